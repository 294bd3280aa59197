"""Create the first admin from the command line: `python -m services.intake.identity_cli create-admin --username NAME`.

It opens intake's database from the same environment variables as the service (DATABASE_URL, DATA_DIR).
"""

from __future__ import annotations

import argparse
import getpass
import socket
import sys
from collections.abc import Sequence
from typing import TextIO

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from services.intake import identity
from services.intake.bootstrap import bootstrap
from shared.auth import ADMIN, Principal
from shared.http import ApiError
from shared.request_context import RequestInfo
from shared.settings import Settings


def main(
    argv: Sequence[str] | None = None, *, stdin: TextIO | None = None, settings: Settings | None = None
) -> int:
    """Run the CLI; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m services.intake.identity_cli", description="宣传月佐证平台 · 账号管理"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-admin", help="创建管理员账号")
    create.add_argument("--username", required=True, help="登录名（3-64 位字母、数字或 _.@-）")
    create.add_argument("--display-name", default="管理员", help="显示名称")
    create.add_argument("--password-stdin", action="store_true", help="从标准输入读取密码（一行），不提示")
    args = parser.parse_args(argv)

    password = _read_password(args.password_stdin, stdin or sys.stdin)
    if password is None:
        return 2
    try:
        command = identity.UserCreate(
            username=args.username, display_name=args.display_name, role=ADMIN, password=password
        )
    except ValidationError as exc:
        print("输入无效：" + "；".join(_explain(error) for error in exc.errors()), file=sys.stderr)
        return 2
    ctx = bootstrap(settings or Settings())
    try:
        actor = Principal(
            id="cli", name=f"命令行 {getpass.getuser()}@{socket.gethostname()}", role=ADMIN, via="cli"
        )
        user = identity.create_user(command, ctx=ctx, principal=actor, request=RequestInfo(request_id="cli"))
    except ApiError as exc:
        print(f"创建失败：{exc.info['message']}", file=sys.stderr)
        return 1
    finally:
        ctx.db.dispose()
    print(f"已创建管理员 {user.username}（编号 {user.id}）。请用 POST /intake/auth/login 登录。")
    return 0


def _read_password(from_stdin: bool, stdin: TextIO) -> str | None:
    if from_stdin:
        return stdin.readline().rstrip("\r\n")
    first = getpass.getpass("密码：")
    if first != getpass.getpass("再次输入密码："):
        print("两次输入的密码不一致。", file=sys.stderr)
        return None
    return first


def _explain(error: ErrorDetails) -> str:
    field = ".".join(str(part) for part in error.get("loc", ())) or "输入"
    if field == "password":
        return f"密码至少 {identity.MIN_PASSWORD} 个字符"
    if field == "username":
        return "登录名须为 3-64 位字母、数字或 _.@-"
    return f"{field}：{error.get('msg')}"


if __name__ == "__main__":
    sys.exit(main())
