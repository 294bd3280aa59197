"""Process settings, read from environment variables once by each composition root."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

SECRETS_DIR_ENV = "SECRETS_DIR"


class Settings(BaseSettings):
    """Every knob of the platform; defaults give the embedded mode.

    Besides environment variables, a secrets folder (env SECRETS_DIR, e.g. /run/secrets with compose or
    Kubernetes secrets) is read: a file named like a field (s3_secret_key, database_password, ...) gives
    its value. An environment variable wins over a file.
    """

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then environment variables, then the files in SECRETS_DIR (read when Settings() is built)."""
        secrets_dir = os.environ.get(SECRETS_DIR_ENV)
        if not secrets_dir:
            return init_settings, env_settings
        if not Path(secrets_dir).is_dir():
            raise ValueError(f"{SECRETS_DIR_ENV}={secrets_dir} is not a folder")
        return init_settings, env_settings, SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir)

    data_dir: Path = Field(
        Path("var"), description="Folder for SQLite files, blobs and mail in embedded mode"
    )

    # database
    database_url: str = Field(
        "sqlite:///{data_dir}/{service}.db",
        description="SQLAlchemy URL; {service} and {data_dir} are filled in. PostgreSQL gives each service its own schema.",
    )
    database_password: SecretStr | None = Field(
        None,
        description="Password put into DATABASE_URL (so the URL itself holds no secret); a secrets-folder file",
    )

    database_pool_size: int = Field(
        10,
        ge=1,
        le=200,
        description="PostgreSQL connections each process keeps open for reuse (its usual concurrency)",
    )
    database_pool_overflow: int = Field(
        5,
        ge=0,
        le=200,
        description="Extra PostgreSQL connections a process may open at peaks, closed once returned; "
        "pool size + overflow is the most one process holds (size max_connections by it)",
    )
    database_ping_idle_s: float = Field(
        1.0,
        ge=0,
        le=3600,
        description="A pooled PostgreSQL connection unused for longer than this is pinged before use and replaced "
        "if the server dropped it; 0 pings before every use (a round trip per transaction). A PostgreSQL restart "
        "shorter than this can fail one transaction per process",
    )

    migrate_on_start: bool = Field(
        True,
        description="Upgrade each service's schema to the newest revision when a process starts; false where a "
        "one-shot `python -m services.<name> migrate` runs first (processes then refuse an older schema)",
    )

    # bus
    bus_backend: Literal["memory", "rabbitmq"] = "memory"
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    rabbitmq_password: SecretStr | None = Field(
        None,
        description="Password put into RABBITMQ_URL (so the URL itself holds no secret); a secrets-folder file",
    )
    bus_exchange: str = "campaign.events"
    bus_queue_prefix: str = ""
    bus_prefetch: int = Field(16, ge=1, le=1000)
    bus_retry_delays_ms: Annotated[tuple[int, ...], NoDecode] = (1000, 5000, 30000)
    bus_heartbeat_s: int = Field(60, ge=0)
    bus_delivery_limit: int = Field(
        10,
        ge=1,
        le=1000,
        description="x-delivery-limit of each main queue: deliveries before RabbitMQ dead-letters a "
        "message that keeps crashing its consumer into the parking lot",
    )

    # blob store
    blob_backend: Literal["folder", "s3"] = "folder"
    blob_dir: Path | None = None
    s3_endpoint: str = "127.0.0.1:9000"
    s3_access_key: str = "minioadmin"
    s3_secret_key: SecretStr = SecretStr("minioadmin")
    s3_bucket: str = "campaign-evidence"
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    # The API holds about five parts while streaming one to S3 (~40 MB at 8 MiB); 10,000 parts still allow 80 GiB.
    s3_part_size: int = Field(8 * 1024 * 1024, ge=5 * 1024 * 1024)
    s3_object_lock: bool = Field(
        False,
        description="Create the bucket with S3 Object Lock, so approved evidence gets store-level retention",
    )
    s3_public_endpoint: str | None = Field(
        None, description="host:port clients use for presigned URLs, if not S3_ENDPOINT"
    )
    s3_connect_timeout_s: float = Field(3.0, gt=0, description="Seconds to open a connection to S3")
    s3_read_timeout_s: float = Field(
        10.0, gt=0, description="Seconds S3 may stay silent on an open connection"
    )
    s3_retries: int = Field(
        1,
        ge=0,
        le=10,
        description="Retries of a failed S3 request; a request fails for good "
        "within (connect + read timeout) x (1 + retries)",
    )

    # mail
    mail_backend: Literal["folder", "smtp"] = "folder"
    mail_dir: Path | None = None
    mail_from: str = "宣传月办公室 <campaign-office@example.org>"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_timeout_s: float = Field(10.0, gt=0, description="Seconds to connect to SMTP, and per reply from it")
    smtp_tls_ca_file: Path | None = Field(
        None, description="CA bundle to trust for STARTTLS/SSL (an internal relay's own CA)"
    )
    smtp_max_per_minute: int = Field(
        0, ge=0, description="Send-rate limit per SMTP server and worker; 0 = unlimited"
    )

    # notification
    public_base_url: str = Field(
        "http://127.0.0.1:8000", description="Where links in e-mails point (the gateway)"
    )
    notify_office_email: str = Field(
        "campaign-office@example.org",
        description="Campaign office mailbox for reminders no liaison can receive",
    )
    notify_office_name: str = Field("宣传月活动办公室", description="Signature under every e-mail")
    notify_template_dir: Path | None = Field(
        None, description="Folder of template overrides searched before the packaged ones"
    )
    notify_submission_receipts: bool = Field(
        False, description="Mail the liaison a receipt for every submission"
    )
    reviewer_emails: Annotated[tuple[str, ...], NoDecode] = ()
    notify_digest_hour: int = Field(
        18, ge=0, le=23, description="Hour of the day (in NOTIFY_TIMEZONE) when daily digests go out"
    )
    notify_timezone: str = "Asia/Shanghai"
    notify_poll_s: float = Field(2.0, gt=0, description="How often the delivery loop looks for due e-mails")
    notify_backoff_base_s: float = Field(2.0, gt=0)
    notify_backoff_max_s: float = Field(600.0, gt=0)
    notify_retry_for_s: float = Field(
        172800.0, gt=0, description="Give up on temporary failures after this long"
    )
    notify_lease_s: float = Field(
        300.0,
        gt=0,
        description="How long a worker's claim on a batch of e-mails holds; a claim older than this goes back "
        "to the queue (the worker is presumed dead). Must exceed a batch's sending time (batch x SMTP_TIMEOUT_S)",
    )

    # notification channels: DingTalk and WeCom group robots (docs/notification.md#group-robots)
    channel_robots: SecretStr | None = Field(
        None,
        description="The group robots (YAML or JSON: name -> kind, token, secret, units, campaigns); "
        "a secrets-folder file `channel_robots`. Unset: no group posts",
    )
    dingtalk_base_url: str = Field(
        "https://oapi.dingtalk.com", description="DingTalk robot API host (tests point it at a local server)"
    )
    wecom_base_url: str = Field(
        "https://qyapi.weixin.qq.com", description="WeCom robot API host (tests point it at a local server)"
    )
    channel_timeout_s: float = Field(10.0, gt=0, description="Seconds to connect to a robot API, and to read")
    channel_max_per_window: int = Field(
        20, ge=1, description="Posts per robot per CHANNEL_RATE_WINDOW_S (DingTalk and WeCom: 20 a minute)"
    )
    channel_rate_window_s: float = Field(60.0, gt=0, description="The window of CHANNEL_MAX_PER_WINDOW")

    # intake: deadline watcher
    deadline_watch_interval_s: float = Field(
        300.0, gt=0, description="How often the intake worker looks at deadlines"
    )
    deadline_lead_times: Annotated[tuple[timedelta, ...], NoDecode] = Field(
        (timedelta(days=3), timedelta(days=1)),
        description="ISO-8601 durations before a deadline when deadline.approaching fires",
    )
    deadline_missed_within: timedelta = Field(
        timedelta(days=7), description="deadline.missed fires only this long after the deadline"
    )

    # evidence limits
    evidence_max_bytes: int = Field(2 * 1024**3, ge=1, description="Largest evidence file of any kind")
    evidence_photo_max_bytes: int = Field(30 * 1024**2, ge=1)
    evidence_video_max_bytes: int = Field(2 * 1024**3, ge=1)
    evidence_document_max_bytes: int = Field(50 * 1024**2, ge=1)
    evidence_max_image_pixels: int = Field(
        64_000_000, ge=1, description="Pixel-flood guard: width x height of a photo"
    )
    evidence_near_duplicate_bits: int = Field(
        10, ge=0, le=64, description="Perceptual-hash distance at or below which photos are flagged"
    )
    evidence_orphan_grace_s: float = Field(
        3600.0,
        ge=0,
        description="Age after which a stored object no evidence row or live session refers to is removed",
    )
    evidence_sweep_interval_s: float = Field(
        600.0,
        ge=0,
        description="How often the evidence worker sweeps orphan objects "
        "and unfinished multipart uploads; 0 = never",
    )
    evidence_integrity_poll_s: float = Field(
        2.0, gt=0, le=300, description="How soon the worker starts a requested integrity check"
    )
    evidence_session_ttl_s: int = Field(
        24 * 3600, ge=60, description="How long an unfinished upload session is kept"
    )
    evidence_presign_ttl_s: int = Field(900, ge=60, le=7 * 24 * 3600)
    evidence_complete_lease_s: int = Field(
        3600,
        ge=10,
        description="How long an upload session's completion may run before another complete() call takes it "
        "over (its process is presumed to have stopped); longer than the slowest completion",
    )
    evidence_download_ttl_s: int = Field(
        300, ge=10, le=7 * 24 * 3600, description="Lifetime of a presigned download URL"
    )
    evidence_retention_days: int = Field(
        5 * 365, ge=1, description="Store-level retention of approved evidence"
    )
    evidence_retention_mode: Literal["GOVERNANCE", "COMPLIANCE"] = "GOVERNANCE"
    evidence_timezone: str = Field(
        "Asia/Shanghai", description="Local time of capture dates compared with campaign windows"
    )
    evidence_rendition_timeout_s: int = Field(
        3600,
        ge=10,
        le=24 * 3600,
        description="Longest the worker spends making one web-playable copy of a video",
    )
    evidence_rendition_poll_s: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="How often the evidence worker looks for videos awaiting a web-playable copy",
    )
    ocr_enabled: bool = Field(
        True,
        description="Read the text in photos and video posters in the evidence worker "
        "(needs the ocr extra: pip install .[ocr]); off: every photo is recorded as unread",
    )
    ocr_max_side_px: int = Field(
        1600, ge=320, le=8000, description="Photos are scaled down to this longest side before OCR"
    )
    ocr_threads: int = Field(1, ge=1, le=64, description="ONNX Runtime threads of the OCR engine")
    ocr_poll_s: float = Field(
        3.0, gt=0, le=3600, description="How often the evidence worker looks for photos to read"
    )
    ocr_claim_timeout_s: int = Field(
        300,
        ge=10,
        le=24 * 3600,
        description="A photo being read longer than this (its worker died) is read again by another",
    )

    # authentication (docs/security.md)
    auth_private_key: SecretStr | None = Field(
        None, description="Ed25519 signing key of the identity service (intake only): PEM text or a file path"
    )
    auth_public_key: str | None = Field(
        None, description="Ed25519 public key every service verifies tokens with: PEM text or a file path"
    )
    auth_issuer: str = Field(
        "campaign-evidence", description="iss claim of issued tokens, checked on verification"
    )
    auth_token_ttl_s: int = Field(
        3600, ge=60, le=7 * 24 * 3600, description="Lifetime of a bearer token from a password login"
    )
    auth_api_token_ttl_s: int = Field(
        900, ge=60, le=24 * 3600, description="Lifetime of a bearer token exchanged for an API key"
    )
    auth_free_failures: int = Field(
        3, ge=1, le=100, description="Wrong passwords per username before login back-off starts"
    )
    auth_ip_free_failures: int = Field(
        20, ge=1, le=10_000, description="Failed logins per client address before back-off starts"
    )
    auth_backoff_base_s: float = Field(
        1.0, gt=0, le=3600, description="First login back-off; doubles with each further failure"
    )
    auth_backoff_max_s: float = Field(900.0, gt=0, le=86400, description="Longest login back-off")
    auth_lockout_failures: int = Field(
        10, ge=2, le=1000, description="Wrong passwords in a row that lock a username"
    )
    auth_lockout_s: float = Field(
        900.0, gt=0, le=7 * 86400, description="How long a lockout lasts (an admin may lift it sooner)"
    )
    auth_failure_window_s: float = Field(3600.0, gt=0, description="Failures older than this are forgotten")
    auth_hash_memory_kib: int = Field(
        65536, ge=8192, le=1048576, description="argon2id memory per password hash, KiB (RFC 9106: 64 MiB)"
    )
    auth_hash_time_cost: int = Field(3, ge=1, le=16, description="argon2id passes per password hash")
    auth_max_concurrent_hashes: int = Field(
        2, ge=1, le=64, description="Password hashes (AUTH_HASH_MEMORY_KIB each) computed at once"
    )
    auth_hash_wait_s: float = Field(
        10.0, gt=0, le=300, description="How long a login waits for a hashing slot before 503"
    )

    # review
    review_claim_ttl_s: int = Field(
        1800,
        ge=60,
        le=7 * 24 * 3600,
        description="How long a reviewer's claim on a submission holds before others may take it over",
    )
    supervision_rules_interval_s: float = Field(
        300.0,
        ge=0,
        description="How often the review worker runs the supervision rules and escalation; 0 = never (only POST /review/supervisions/run-rules)",
    )

    # outbox relay
    outbox_poll_s: float = Field(0.5, gt=0)
    outbox_notify: bool = Field(
        True,
        description="On PostgreSQL, APIs NOTIFY the workers' relays after committing events, which publish them "
        "at once instead of at their next poll (shared/outbox_wake.py); the poll stays the safety net",
    )

    # health (shared/health.py)
    health_port: int = Field(
        0, ge=0, le=65535, description="Port of a worker's /livez, /readyz (and /metrics) server; 0 = none"
    )
    health_probe_timeout_s: float = Field(
        2.0, gt=0, le=30, description="Budget of one readiness check of all adapters"
    )
    health_stall_s: float = Field(
        900.0, gt=0, description="A worker loop busy in one step longer than this fails /livez"
    )

    # operations (docs/operations.md)
    log_format: Literal["auto", "json", "text"] = Field(
        "auto",
        description="json: one JSON object per line; text: for a "
        "developer's terminal; auto: text on a terminal, else json",
    )
    log_level: str = "INFO"
    metrics_token: SecretStr | None = Field(
        None, description="If set, GET /metrics wants `Authorization: Bearer <token>`"
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        None,
        description="Turns on OpenTelemetry tracing to this OTLP/HTTP endpoint (needs the otel extra); the "
        "SDK reads the other standard OTEL_* variables itself",
    )
    retention_days: int = Field(
        30, ge=1, description="Published outbox rows and inbox records older than this are pruned"
    )
    prune_interval_s: float = Field(
        3600.0, gt=0, description="How often each worker prunes its outbox and inbox"
    )

    # http
    host: str = "127.0.0.1"
    port: int = 8000
    root_path: str = Field(
        "", description="Prefix a gateway strips before the API (e.g. /intake), so its docs link right"
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="Proxies (addresses or networks, comma-separated) whose X-Forwarded-For/-Proto the APIs trust",
    )
    api_workers: int = Field(
        1, ge=1, le=32, description="uvicorn worker processes of a distributed API (each with its own pool)"
    )

    @field_validator("bus_retry_delays_ms", mode="before")
    @classmethod
    def _split_delays(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(int(part) for part in value.split(",") if part.strip())
        return value

    @field_validator("reviewer_emails", mode="before")
    @classmethod
    def _split_emails(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("notify_timezone", "evidence_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone: {value!r}") from exc
        return value

    @field_validator("deadline_lead_times", mode="before")
    @classmethod
    def _split_leads(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("deadline_lead_times")
    @classmethod
    def _positive_leads(cls, value: tuple[timedelta, ...]) -> tuple[timedelta, ...]:
        if any(lead <= timedelta(0) for lead in value):
            raise ValueError("deadline lead times must be positive")
        return tuple(sorted(set(value), reverse=True))

    def database_url_for(self, service: str) -> str:
        """The database URL one service uses, with placeholders filled and DATABASE_PASSWORD put in."""
        url = self.database_url.format(service=service, data_dir=self.data_dir)
        if self.database_password is None:
            return url
        from sqlalchemy.engine import make_url

        return (
            make_url(url)
            .set(password=self.database_password.get_secret_value())
            .render_as_string(hide_password=False)
        )

    def broker_url(self) -> str:
        """RABBITMQ_URL with RABBITMQ_PASSWORD put in."""
        if self.rabbitmq_password is None:
            return self.rabbitmq_url
        from urllib.parse import quote, urlsplit, urlunsplit

        parts = urlsplit(self.rabbitmq_url)
        user = parts.username or "guest"
        host = parts.hostname or ""
        netloc = f"{user}:{quote(self.rabbitmq_password.get_secret_value(), safe='')}@{host}"
        return urlunsplit(parts._replace(netloc=netloc + (f":{parts.port}" if parts.port else "")))

    @property
    def blob_folder(self) -> Path:
        """Where the folder blob store keeps its objects."""
        return self.blob_dir or self.data_dir / "blobs"

    @property
    def mail_folder(self) -> Path:
        """Where the folder mailer writes .eml files."""
        return self.mail_dir or self.data_dir / "mail"
