"""`python -m deploy.processes up`: the distributed platform as eight local processes, without Docker.

An API and a worker per service on the local RabbitMQ and PostgreSQL, with a fresh database (dropped
afterwards) or a named one (kept, so a later `up --name` finds its data), S3 on moto's server (in this
process) or a given endpoint, and SMTP to a given server or to a local sink that writes each e-mail as an
.eml file. Prints where everything listens; Ctrl-C (or SIGTERM) stops every process it started and removes
what a fresh run created.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from deploy.processes import SERVICES, Cluster, cluster_env, free_port, replica_name

log = logging.getLogger("deploy.local")

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
RETRY_DELAYS_MS = (1000, 5000, 30000)
NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
READY_LINE = "Ctrl-C stops every process"  # printed once everything answers; tests wait for it


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The `up` command line."""
    parser = argparse.ArgumentParser(prog="python -m deploy.processes", description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the eight processes and wait for Ctrl-C")
    up.add_argument(
        "--name", help="database name and bus prefix to use and keep (default: a fresh one, removed on exit)"
    )
    up.add_argument(
        "--postgres-url",
        default=os.environ.get("LOCAL_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="PostgreSQL server (any database on it) where the run's database is created (default %(default)s)",
    )
    up.add_argument(
        "--rabbitmq-url",
        default=os.environ.get("LOCAL_RABBITMQ_URL", DEFAULT_RABBITMQ_URL),
        help="RabbitMQ broker (default %(default)s)",
    )
    up.add_argument("--s3-endpoint", help="host:port of an S3 service to use instead of moto's server")
    up.add_argument("--s3-access-key", default="minioadmin")
    up.add_argument("--s3-secret-key", default="minioadmin")
    up.add_argument("--s3-bucket", help="bucket name (default: the run's name)")
    up.add_argument("--smtp-host", help="SMTP server to send through instead of the local sink")
    up.add_argument("--smtp-port", type=int, default=25)
    up.add_argument("--workers", type=int, default=1, help="worker processes per service (default 1)")
    up.add_argument(
        "--data-dir",
        type=Path,
        help="folder for logs, the token key pair and the mail sink (default var/local/<name>)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start everything, print where it listens, wait for Ctrl-C or a dying process, then stop and clean up."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("mail.log", "httpx", "werkzeug"):  # one line per SMTP command / health poll otherwise
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.name and not NAME.match(args.name):
        print(
            f"--name {args.name!r}: use lower-case letters, digits and _ (it names a database)",
            file=sys.stderr,
        )
        return 2
    run = args.name or f"local_{uuid.uuid4().hex[:8]}"
    stopping = {"signal": None}

    def on_signal(signum, _frame) -> None:
        stopping["signal"] = signum
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    data_dir = (args.data_dir or Path("var") / "local" / run).resolve()
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    try:
        with ExitStack() as stack:
            database_url = stack.enter_context(run_database(args.postgres_url, run, keep=bool(args.name)))
            bus = {
                "BUS_BACKEND": "rabbitmq",
                "RABBITMQ_URL": args.rabbitmq_url,
                "BUS_EXCHANGE": f"{run}.events",
                "BUS_QUEUE_PREFIX": f"{run}.",
                "BUS_RETRY_DELAYS_MS": ",".join(map(str, RETRY_DELAYS_MS)),
            }
            if not args.name:
                stack.callback(delete_bus_objects, args.rabbitmq_url, run)
            s3 = stack.enter_context(s3_service(args, bucket=args.s3_bucket or run.replace("_", "-")))
            smtp = stack.enter_context(smtp_service(args, data_dir / "mail-sink"))
            env = cluster_env(
                {
                    **bus,
                    "DATABASE_URL": database_url,
                    **s3,
                    **smtp,
                    "DATA_DIR": str(data_dir),
                    "PUBLIC_BASE_URL": "http://127.0.0.1:8000",
                }
            )
            cluster = Cluster(env=env, log_dir=data_dir / "logs", worker_replicas=args.workers)
            stack.callback(cluster.stop)
            print(
                f"starting {len(SERVICES) * (1 + args.workers)} processes for run {run} (logs in {data_dir / 'logs'})",
                flush=True,
            )
            cluster.start(timeout=120)
            print_listening(
                cluster, run=run, database_url=database_url, env=env, keep=bool(args.name), data_dir=data_dir
            )
            watch(cluster)
    except KeyboardInterrupt:
        print(
            f"\nstopped ({signal.Signals(stopping['signal']).name if stopping['signal'] else 'interrupted'}): "
            f"every process of run {run} has ended"
            + ("" if args.name else "; its database, queues and bucket are removed"),
            flush=True,
        )
        return 0
    except RuntimeError as failed:
        print(f"run {run} failed and was stopped: {failed}", file=sys.stderr, flush=True)
        return 1
    return 0


def watch(cluster: Cluster) -> None:
    """Block until Ctrl-C; a process that exits on its own ends the run (RuntimeError with its log's tail)."""
    while True:
        for name, proc in cluster.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{cluster.log(name)[-2000:]}")
        time.sleep(0.5)


def print_listening(
    cluster: Cluster, *, run: str, database_url: str, env: dict[str, str], keep: bool, data_dir: Path
) -> None:
    """Where each service listens and which servers the run uses."""
    from sqlalchemy.engine import make_url

    lines = [f"\ncampaign-evidence is running (run {run}):"]
    for service in SERVICES:
        for n, port in enumerate(cluster.api_ports[service], start=1):
            name = replica_name(service, "api", n)
            lines.append(f"  {name:<24} http://127.0.0.1:{port}  (docs: http://127.0.0.1:{port}/docs)")
        for n in range(1, cluster.worker_replicas + 1):
            name = replica_name(service, "worker", n)
            lines.append(
                f"  {name:<24} pid {cluster.processes[name].pid}, health http://127.0.0.1:{cluster.health_ports[name]}/livez"
            )
    url = make_url(database_url)
    lines += [
        f"  PostgreSQL               {url.host}:{url.port or 5432} database {url.database}"
        + (" (kept)" if keep else " (fresh; dropped on exit)"),
        f"  RabbitMQ                 {redact(env['RABBITMQ_URL'])} exchange {env['BUS_EXCHANGE']}, queues {env['BUS_QUEUE_PREFIX']}*",
        f"  S3                       {env['S3_ENDPOINT']} bucket {env['S3_BUCKET']}"
        + (" (moto's server)" if env.get("LOCAL_S3") else ""),
        f"  SMTP                     {env['SMTP_HOST']}:{env['SMTP_PORT']}"
        + (f" (local sink: each e-mail lands in {data_dir / 'mail-sink'})" if env.get("LOCAL_SMTP") else ""),
        f"  first admin:             DATABASE_URL={redact(database_url)} DATA_DIR={data_dir} "
        f"{sys.executable} -m services.intake.identity_cli create-admin --username admin",
        f"{READY_LINE} (and removes what a fresh run created).",
    ]
    print("\n".join(lines), flush=True)


def redact(url: str) -> str:
    """A URL with its password replaced by ***."""
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url)


@contextmanager
def run_database(postgres_url: str, name: str, *, keep: bool) -> Iterator[str]:
    """The run's database on the PostgreSQL server: created if missing; dropped afterwards unless kept."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
                conn.execute(text(f'CREATE DATABASE "{name}"'))
                log.info("created database %s", name)
    except Exception as exc:
        admin.dispose()
        raise RuntimeError(f"PostgreSQL at {redact(postgres_url)} refused database {name}: {exc}") from exc
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            log.info("dropped database %s", name)
        admin.dispose()


def delete_bus_objects(rabbitmq_url: str, run: str) -> None:
    """Remove the run's queues (main, retry, parking) and exchange; missing ones are fine."""
    import pika

    from shared.bus.rabbitmq import queue_names

    queues = [name for service in SERVICES for name in queue_names(f"{run}.{service}", RETRY_DELAYS_MS)]
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    try:
        for queue in queues:
            channel = connection.channel()
            channel.queue_delete(queue=queue)
            channel.close()
        connection.channel().exchange_delete(exchange=f"{run}.events")
    finally:
        connection.close()
    log.info("deleted the queues and exchange of run %s", run)


@contextmanager
def s3_service(args: argparse.Namespace, *, bucket: str) -> Iterator[dict[str, str]]:
    """S3 settings: the given endpoint, or moto's server started here (its bucket is emptied and removed after)."""
    if args.s3_endpoint:
        yield {
            "BLOB_BACKEND": "s3",
            "S3_ENDPOINT": args.s3_endpoint,
            "S3_ACCESS_KEY": args.s3_access_key,
            "S3_SECRET_KEY": args.s3_secret_key,
            "S3_BUCKET": bucket,
        }
        return
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise RuntimeError(
            "moto is not installed: run `make install` (test extras) or pass --s3-endpoint"
        ) from None
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield {
            "BLOB_BACKEND": "s3",
            "S3_ENDPOINT": f"{host}:{port}",
            "S3_ACCESS_KEY": "local",
            "S3_SECRET_KEY": "local-secret",
            "S3_BUCKET": bucket,
            "LOCAL_S3": "moto",
        }
    finally:
        server.stop()  # moto keeps everything in memory: nothing to remove


@contextmanager
def smtp_service(args: argparse.Namespace, sink_dir: Path) -> Iterator[dict[str, str]]:
    """SMTP settings: the given server, or a local sink started here that writes each e-mail to sink_dir."""
    if args.smtp_host:
        yield {"MAIL_BACKEND": "smtp", "SMTP_HOST": args.smtp_host, "SMTP_PORT": str(args.smtp_port)}
        return
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        raise RuntimeError(
            "aiosmtpd is not installed: run `make install` (test extras) or pass --smtp-host"
        ) from None
    sink_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    controller = Controller(MailSink(sink_dir), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield {"MAIL_BACKEND": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "LOCAL_SMTP": "sink"}
    finally:
        controller.stop()


class MailSink:
    """aiosmtpd handler that keeps every message as an .eml file and logs who it was for."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def handle_DATA(self, server, session, envelope) -> str:
        """Write the message to the sink folder."""
        path = self.folder / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.eml"
        path.write_bytes(envelope.original_content or envelope.content)
        log.info("mail to %s kept in %s", ", ".join(envelope.rcpt_tos), path.name)
        return "250 Message accepted for delivery"
