"""Write the secret files docker-compose.yml mounts (`make secrets`): random passwords and the token key pair.

    python -m deploy.secrets [--dir deploy/secrets] [--kubectl]

Existing files are kept (a data volume already uses their passwords); only missing ones are written. The
folder is made private (0700) and the files in it world-readable (0644): compose bind-mounts file secrets as
they are, and each container reads them as its own user (uid 10001, postgres, rabbitmq, grafana, ...), while
no other user on the host can enter the folder. --kubectl prints the `kubectl create secret generic` commands that give the same files to the
Kubernetes manifests (deploy/k8s) instead.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

SERVICES = ("intake", "evidence_storage", "review", "notification")
RABBITMQ_USER = "campaign"
RABBITMQ_VHOST = "campaign"
DEFAULT_DIR = Path(__file__).resolve().parent / "secrets"


def _password() -> str:
    return secrets.token_urlsafe(24)


def _rabbitmq_conf(folder: Path) -> str:
    password = (folder / "rabbitmq_password").read_text(encoding="utf-8").strip()
    return (
        f"default_user = {RABBITMQ_USER}\ndefault_pass = {password}\ndefault_vhost = {RABBITMQ_VHOST}\n"
        "default_permissions.configure = .*\ndefault_permissions.read = .*\ndefault_permissions.write = .*\n"
    )


def secret_files() -> dict[str, Callable[[Path], str]]:
    """Each secret file's name and how to make its content (in order: later ones may read earlier ones)."""
    files: dict[str, Callable[[Path], str]] = {"postgres_password": lambda _: _password()}
    files.update({f"db_password_{service}": (lambda _: _password()) for service in SERVICES})
    files.update(
        {
            "rabbitmq_password": lambda _: _password(),
            "rabbitmq_conf": _rabbitmq_conf,
            "minio_root_password": lambda _: _password(),
            "s3_secret_key": lambda _: _password(),
            "grafana_admin_password": lambda _: _password(),
        }
    )
    return files


def write_secrets(folder: Path) -> list[str]:
    """Write every missing secret file into folder; returns the names written."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    written = []
    for name, make in secret_files().items():
        if not (folder / name).exists():
            _write(folder / name, make(folder))
            written.append(name)
    if not (folder / "auth_private_key").exists():
        from shared.auth import generate_key_pair

        private, public = generate_key_pair()
        _write(folder / "auth_private_key", private)
        _write(folder / "auth_public_key", public)
        written += ["auth_private_key", "auth_public_key"]
    return written


def _write(path: Path, content: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)
    path.chmod(0o644)  # readable by the containers' users; the folder (0700) keeps the host's other users out


def kubectl_commands(folder: Path, namespace: str = "campaign-evidence") -> list[str]:
    """`kubectl create secret` commands giving the same files to the Kubernetes manifests (deploy/k8s)."""

    def create(name: str, keys: dict[str, str]) -> str:
        args = " ".join(
            f"--from-file={key}={shlex.quote(str(folder / source))}" for key, source in keys.items()
        )
        return f"kubectl -n {namespace} create secret generic {name} {args}"

    commands = [
        create(f"{service.replace('_', '-')}-db", {"database_password": f"db_password_{service}"})
        for service in SERVICES
    ]
    commands += [
        create(
            "platform-bus-store", {"rabbitmq_password": "rabbitmq_password", "s3_secret_key": "s3_secret_key"}
        ),
        create("token-public-key", {"auth_public_key": "auth_public_key"}),
        create("token-signing-key", {"auth_private_key": "auth_private_key"}),
        # KEDA reads queue lengths as the platform's user: the broker URL with its password
        create("keda-rabbitmq", {"host": "keda_rabbitmq_host"}),
    ]
    return commands


def write_keda_host(folder: Path, broker_host: str = "rabbitmq.campaign-infra.svc") -> None:
    """The file behind the keda-rabbitmq Secret (an AMQP URL with the platform user's password), if missing."""
    path = folder / "keda_rabbitmq_host"
    if not path.exists():
        password = (folder / "rabbitmq_password").read_text(encoding="utf-8").strip()
        _write(path, f"amqp://{RABBITMQ_USER}:{quote(password, safe='')}@{broker_host}:5672/{RABBITMQ_VHOST}")


def main(argv: list[str] | None = None) -> int:
    """Write the missing secret files, or print the kubectl commands."""
    parser = argparse.ArgumentParser(prog="python -m deploy.secrets", description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help="folder of the secret files (default %(default)s)"
    )
    parser.add_argument(
        "--kubectl", action="store_true", help="print kubectl commands for deploy/k8s instead"
    )
    args = parser.parse_args(argv)
    if args.kubectl:
        write_secrets(args.dir)
        write_keda_host(args.dir)
        print("\n".join(kubectl_commands(args.dir)))
        return 0
    written = write_secrets(args.dir)
    print(
        f"{args.dir}: wrote {', '.join(written)}"
        if written
        else f"{args.dir}: every secret file exists; nothing changed"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
