"""Operator command line over the services' admin routes (/…/ops): `python -m deploy.ops --help`.

It talks to the gateway (embedded `make run` or the distributed stack) with an admin token: --token or
OPS_TOKEN, else one it signs itself where the identity service's signing key is configured (AUTH_PRIVATE_KEY,
or the embedded data folder). Every replay, purge and requeue lands in the service's audit log.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import httpx

PREFIXES = {
    "intake": "/intake",
    "evidence_storage": "/evidence",
    "review": "/review",
    "notification": "/notification",
}


def main(argv: Sequence[str] | None = None, *, client: httpx.Client | None = None, out=sys.stdout) -> int:
    """Run one operator command; returns the exit code."""
    args = _parser().parse_args(argv)
    own = client is None
    client = client or httpx.Client(
        base_url=args.url or _default_url(),
        timeout=60,
        headers={"Authorization": f"Bearer {args.token or _token()}"},
    )
    try:
        result = _run(client, args)
    except _Failed as failed:
        print(f"失败 / failed: {failed}", file=sys.stderr)
        return 1
    finally:
        if own:
            client.close()
    print(json.dumps(result, ensure_ascii=False, indent=2), file=out)
    return 0


class _Failed(RuntimeError):
    pass


def _run(client: httpx.Client, args: argparse.Namespace) -> Any:
    unknown = [name for name in getattr(args, "services", []) if name not in PREFIXES]
    if unknown:
        raise _Failed(f"unknown service {', '.join(unknown)}; known: {', '.join(PREFIXES)}")
    if args.command == "lag":
        return [_call(client, "GET", f"{PREFIXES[name]}/ops/lag") for name in args.services or PREFIXES]
    if args.command == "outbox":
        return {
            name: _call(client, "GET", f"{PREFIXES[name]}/ops/outbox", params={"errors_only": not args.all})
            for name in args.services or PREFIXES
        }
    if args.command == "requeue":
        return _call(
            client,
            "POST",
            "/notification/ops/deliveries/requeue",
            json={
                "delivery_ids": args.ids or None,
                "stuck_minutes": args.stuck_minutes,
                "reason": args.reason,
                **({"channel": args.channel} if args.channel else {}),
            },
        )
    if args.command == "channels":
        return _call(client, "GET", "/notification/ops/channels")
    prefix = PREFIXES[args.service]
    if args.action == "list":
        return _call(client, "GET", f"{prefix}/ops/parked", params={"limit": args.limit})
    if args.action == "peek":
        return _call(client, "GET", f"{prefix}/ops/parked/{args.message_id}")
    target = None if args.all else args.message_id
    if target is None and not args.all:
        raise _Failed("give a message id, or --all")
    if args.action == "purge" and not args.reason:
        raise _Failed("purge needs --reason (it is kept in the audit log)")
    if args.action == "replay":
        return _call(
            client, "POST", f"{prefix}/ops/parked/replay", json={"message_id": target, "reason": args.reason}
        )
    return _call(
        client, "POST", f"{prefix}/ops/parked/purge", json={"message_id": target, "reason": args.reason}
    )


def _call(client: httpx.Client, method: str, path: str, **kwargs) -> Any:
    try:
        response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise _Failed(f"{method} {path}: {exc}") from None
    if response.status_code >= 400:
        raise _Failed(f"{method} {path}: {response.status_code} {response.text[:500]}")
    return response.json()


def _default_url() -> str:
    from shared.settings import Settings

    return Settings().public_base_url


def _token() -> str:
    if os.environ.get("OPS_TOKEN"):
        return os.environ["OPS_TOKEN"]
    from shared.auth import ADMIN, issuer_from_settings
    from shared.settings import Settings

    try:
        issuer = issuer_from_settings(Settings())
    except (ValueError, OSError) as exc:
        raise SystemExit(f"no admin token: pass --token or OPS_TOKEN ({exc})") from None
    return issuer.issue(subject="ops-cli", name="运维命令行 ops CLI", role=ADMIN, ttl_s=600)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.ops", description="运维工具 · operator tools (docs/operations.md)"
    )
    parser.add_argument("--url", help="the gateway (default: PUBLIC_BASE_URL)")
    parser.add_argument("--token", help="an admin bearer token (default: OPS_TOKEN, else one signed here)")
    commands = parser.add_subparsers(dest="command", required=True)

    parked = commands.add_parser("parked", help="停放的消息 · a service's parking lot")
    parked.add_argument("action", choices=["list", "peek", "replay", "purge"])
    parked.add_argument("service", choices=list(PREFIXES))
    parked.add_argument("message_id", nargs="?", help="peek/replay/purge: the message (event) id")
    parked.add_argument(
        "--all", action="store_true", help="replay/purge: every parked message of the service"
    )
    parked.add_argument("--reason", help="why (required for purge; kept in the audit log)")
    parked.add_argument("--limit", type=int, default=100)

    outbox = commands.add_parser("outbox", help="未发布的事件 · outbox rows that failed to publish")
    outbox.add_argument(
        "services", nargs="*", default=[], help=f"any of {', '.join(PREFIXES)} (default: all)"
    )
    outbox.add_argument(
        "--all", action="store_true", help="every unpublished row, not only those with an error"
    )

    lag = commands.add_parser("lag", help="消费积压 · messages waiting and parked per consumer")
    lag.add_argument("services", nargs="*", default=[], help=f"any of {', '.join(PREFIXES)} (default: all)")

    requeue = commands.add_parser(
        "requeue", help="重发邮件或群消息 · send failed or stuck e-mails and group posts again"
    )
    requeue.add_argument("ids", nargs="*", help="delivery ids (default: every failed and stuck one)")
    requeue.add_argument("--stuck-minutes", type=int, default=15)
    requeue.add_argument("--channel", choices=["email", "dingtalk", "wecom"], help="only this channel")
    requeue.add_argument("--reason", required=True)

    commands.add_parser(
        "channels", help="群机器人 · the group robots configured, their posts and rate window"
    )
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
