"""Process settings, read from environment variables once by each composition root."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the platform; defaults give the embedded mode."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    data_dir: Path = Field(Path("var"), description="Folder for SQLite files, blobs and mail in embedded mode")

    # database
    database_url: str = Field(
        "sqlite:///{data_dir}/{service}.db",
        description="SQLAlchemy URL; {service} and {data_dir} are filled in. PostgreSQL gives each service its own schema.",
    )

    # bus
    bus_backend: Literal["memory", "rabbitmq"] = "memory"
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    bus_exchange: str = "campaign.events"
    bus_queue_prefix: str = ""
    bus_prefetch: int = Field(16, ge=1, le=1000)
    bus_retry_delays_ms: Annotated[tuple[int, ...], NoDecode] = (1000, 5000, 30000)
    bus_heartbeat_s: int = Field(60, ge=0)

    # blob store
    blob_backend: Literal["folder", "s3"] = "folder"
    blob_dir: Path | None = None
    s3_endpoint: str = "127.0.0.1:9000"
    s3_access_key: str = "minioadmin"
    s3_secret_key: str = "minioadmin"
    s3_bucket: str = "campaign-evidence"
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    s3_part_size: int = Field(16 * 1024 * 1024, ge=5 * 1024 * 1024)

    # mail
    mail_backend: Literal["folder", "smtp"] = "folder"
    mail_dir: Path | None = None
    mail_from: str = "宣传月办公室 <campaign-office@example.org>"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_timeout_s: float = 10.0

    # evidence limits
    evidence_max_bytes: int = Field(2 * 1024**3, ge=1)

    # outbox relay
    outbox_poll_s: float = Field(0.5, gt=0)

    # http
    host: str = "127.0.0.1"
    port: int = 8000
    root_path: str = Field("", description="Prefix a gateway strips before the API (e.g. /intake), so its docs link right")

    @field_validator("bus_retry_delays_ms", mode="before")
    @classmethod
    def _split_delays(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(int(part) for part in value.split(",") if part.strip())
        return value

    def database_url_for(self, service: str) -> str:
        """The database URL one service uses, with placeholders filled."""
        return self.database_url.format(service=service, data_dir=self.data_dir)

    @property
    def blob_folder(self) -> Path:
        """Where the folder blob store keeps its objects."""
        return self.blob_dir or self.data_dir / "blobs"

    @property
    def mail_folder(self) -> Path:
        """Where the folder mailer writes .eml files."""
        return self.mail_dir or self.data_dir / "mail"
