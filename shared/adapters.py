"""Pick each port's adapter from settings; called only by composition roots."""

from __future__ import annotations

from shared.blobs.port import BlobStore
from shared.bus.port import MessageBus
from shared.channels.robots import Channels
from shared.mail.port import Mailer
from shared.settings import Settings


def make_bus(settings: Settings) -> MessageBus:
    """The in-process bus, or RabbitMQ when BUS_BACKEND=rabbitmq."""
    if settings.bus_backend == "rabbitmq":
        from shared.bus.rabbitmq import RabbitMQBus

        return RabbitMQBus(
            url=settings.broker_url(),
            exchange=settings.bus_exchange,
            queue_prefix=settings.bus_queue_prefix,
            delivery_limit=settings.bus_delivery_limit,
            prefetch=settings.bus_prefetch,
            retry_delays_ms=settings.bus_retry_delays_ms,
            heartbeat_s=settings.bus_heartbeat_s,
        )
    from shared.bus.memory import InMemoryBus

    return InMemoryBus(retry_delays_ms=settings.bus_retry_delays_ms)


def make_blob_store(settings: Settings) -> BlobStore:
    """A local folder, or S3/MinIO when BLOB_BACKEND=s3."""
    if settings.blob_backend == "s3":
        from shared.blobs.s3 import S3BlobStore

        return S3BlobStore(
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value(),
            bucket=settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
            part_size=settings.s3_part_size,
            object_lock=settings.s3_object_lock,
            public_endpoint=settings.s3_public_endpoint,
            connect_timeout_s=settings.s3_connect_timeout_s,
            read_timeout_s=settings.s3_read_timeout_s,
            retries=settings.s3_retries,
        )
    from shared.blobs.folder import FolderBlobStore

    return FolderBlobStore(settings.blob_folder)


def make_mailer(settings: Settings) -> Mailer:
    """A folder of .eml files, or SMTP when MAIL_BACKEND=smtp."""
    if settings.mail_backend == "smtp":
        from shared.mail.smtp import SmtpMailer

        return SmtpMailer(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls,
            ssl=settings.smtp_ssl,
            timeout_s=settings.smtp_timeout_s,
            ca_file=settings.smtp_tls_ca_file,
        )
    from shared.mail.folder import FolderMailer

    return FolderMailer(settings.mail_folder)


def make_channels(settings: Settings) -> Channels | None:
    """The group-robot channels when CHANNEL_ROBOTS names any robot, else None (no group posts)."""
    from shared.channels.dingtalk import DingTalkChannel
    from shared.channels.ratelimit import WindowLimit
    from shared.channels.robots import RobotBook
    from shared.channels.wecom import WeComChannel

    secret = settings.channel_robots
    book = RobotBook.parse(secret.get_secret_value() if secret else None)
    if not len(book):
        return None
    timeout = settings.channel_timeout_s
    return Channels(
        robots=book,
        adapters={
            "dingtalk": DingTalkChannel(settings.dingtalk_base_url, timeout_s=timeout),
            "wecom": WeComChannel(settings.wecom_base_url, timeout_s=timeout),
        },
        limit=WindowLimit(settings.channel_max_per_window, settings.channel_rate_window_s),
    )
