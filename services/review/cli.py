"""Review operations from the command line, against the review database the settings name.

    python -m services.review.cli verify-timeline
    python -m services.review.cli verify-timeline --expect 1234:<sha256>

`verify-timeline` walks the whole activity timeline, recomputes every record's hash and the chain
between them, prints progress and a summary, and exits 1 when anything was altered, removed,
reordered or cut off (0 when the chain is intact). The last record's number and hash are printed:
note them (or publish them) and pass them back later as `--expect`, so that even a rewrite of the
whole tail by someone with full database access is caught.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from services.review.bootstrap import SERVICE
from services.review.models import TimelineRecord
from services.review.timeline import chain as timeline
from shared.db import Database, service_database
from shared.settings import Settings


def main(
    argv: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Run one command; returns the process exit code (0 intact, 1 any problem)."""
    parser = argparse.ArgumentParser(prog="python -m services.review.cli", description="审核服务运维命令")
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify-timeline", help="校验活动时间线的哈希链（改动、删除、调换、截断）")
    verify.add_argument(
        "--expect",
        metavar="SEQ:HASH",
        default=None,
        help="此前记下的某条记录的序号和哈希，确认它仍在链中且未变",
    )
    args = parser.parse_args(argv)
    settings = settings or Settings()
    db = service_database(settings, SERVICE)
    try:
        return _verify_timeline(db, args.expect, out, err)
    finally:
        db.dispose()


def _verify_timeline(db: Database, expect: str | None, out: TextIO, err: TextIO) -> int:
    print(f"正在校验活动时间线（{db.url.render_as_string(hide_password=True)}）…", file=out, flush=True)
    try:
        with db.session() as uow:
            result = timeline.verify(
                uow, progress=lambda count: print(f"  已校验 {count} 条…", file=err, flush=True)
            )
            last = uow.execute(
                select(TimelineRecord.seq, TimelineRecord.hash).order_by(TimelineRecord.seq.desc()).limit(1)
            ).first()
            anchor = _check_anchor(uow, expect) if expect else None
    except SQLAlchemyError as exc:
        print(f"无法读取时间线：{type(exc).__name__}: {str(exc).splitlines()[0]}", file=err)
        return 1
    problems = [(p.seq, p.code, p.message) for p in result.problems]
    if anchor:
        problems.append(anchor)
    for _seq, code, message in problems:
        print(f"  [{code}] {message}", file=out)
    if last is not None:
        print(f"链尾：第 {last.seq} 条，哈希 {last.hash}", file=out)
    if problems:
        print(f"校验未通过：共读取 {result.records} 条记录，发现 {len(problems)} 处问题。", file=out)
        return 1
    print(f"校验通过：共 {result.records} 条记录，哈希链完整。", file=out)
    return 0


def _check_anchor(uow, expect: str) -> tuple[int | None, str, str] | None:
    seq_text, _, digest = expect.partition(":")
    if not seq_text.isdigit() or len(digest) != 64:
        return None, "bad_anchor", f"--expect 应为 序号:哈希（64 位十六进制），收到 {expect!r}"
    row = uow.get(TimelineRecord, int(seq_text))
    if row is None:
        return int(seq_text), "anchor_missing", f"此前记下的第 {seq_text} 条记录已不在链中"
    if row.hash != digest.lower():
        return int(seq_text), "anchor_mismatch", f"第 {seq_text} 条记录的哈希此前为 {digest}，现为 {row.hash}"
    return None


if __name__ == "__main__":
    sys.exit(main())
