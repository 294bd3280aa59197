"""Load campaign definitions from the command line, with the same use cases and settings as the API.

    python -m services.intake.cli load deploy/campaigns/huaibei-2020.yaml
    python -m services.intake.cli check deploy/campaigns/huaibei-2020.yaml
    python -m services.intake.cli rebuild-coverage [--campaign CODE]

`load` validates the definition, creates the campaign or publishes its new version (the same content
again changes nothing), then attaches the reference materials its `materials[].file` name, resolved
against the definition's folder (an unchanged file is left alone). Events go into intake's outbox;
the intake worker (or the embedded platform) publishes them. `rebuild-coverage` recomputes the coverage
projection from the submissions (services/intake/projection.py), for one campaign or all.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from services.intake import campaigns, materials, projection, queries
from services.intake.bootstrap import bootstrap
from services.intake.definition import CampaignDefinition, DefinitionInvalid, parse_definition
from shared.http import ApiError
from shared.runtime import ServiceContext
from shared.settings import Settings

OUTCOMES = {"attached": "已上传", "replaced": "已更新", "unchanged": "未变化"}


def packaged_campaign(path: Path) -> Path:
    """The path itself if it exists, else the campaign of that name shipped as package data (deploy/campaigns)."""
    if path.exists() or len(path.parts) != 1:
        return path
    from importlib.resources import files

    shipped = Path(str(files("deploy") / "campaigns" / path.name))
    for candidate in (shipped, shipped.with_name(f"{path.name}.yaml")):
        if candidate.is_file():
            return candidate
    return path


def main(
    argv: Sequence[str] | None = None,
    *,
    ctx: ServiceContext | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Run one command; returns the process exit code (0 ok, 2 refused definition, 1 other error)."""
    parser = argparse.ArgumentParser(prog="python -m services.intake.cli", description="活动定义：校验与加载")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("load", "校验并加载（创建活动或发布新版本）"), ("check", "只校验，不写入")):
        command = commands.add_parser(name, help=text)
        command.add_argument(
            "file", type=Path, help="YAML 或 JSON 格式的活动定义；或随平台提供的活动名（如 huaibei-2020）"
        )
        command.add_argument("--format", choices=["yaml", "json"], default=None, help="默认按内容判断")
        if name == "load":
            command.add_argument("--actor", default=None, help="记入审计的操作人（默认：cli:<系统用户>）")
    rebuild = commands.add_parser("rebuild-coverage", help="从报送材料重建覆盖情况投影（计数表）")
    rebuild.add_argument("--campaign", default=None, help="只重建这个活动（id 或代码；默认全部）")
    args = parser.parse_args(argv)
    if args.command == "rebuild-coverage":
        return _rebuild_coverage(args.campaign, ctx or bootstrap(Settings()), out, err)
    args.file = packaged_campaign(args.file)
    try:
        text = args.file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"无法读取 {args.file}：{exc}", file=err)
        return 1
    try:
        definition = parse_definition(text, fmt=args.format)
    except DefinitionInvalid as exc:
        print(f"活动定义 {args.file} 有 {len(exc.issues)} 处错误，未加载：", file=err)
        for issue in exc.issues:
            print(f"  - {issue.describe()}", file=err)
        return 2
    missing = [m.file for m in definition.materials if m.file and not (args.file.parent / m.file).is_file()]
    if missing:
        print(f"参考资料文件不存在（相对于 {args.file.parent}）：{'、'.join(missing)}；未加载", file=err)
        return 2
    if args.command == "check":
        print(
            f"活动定义 {args.file} 校验通过：{definition.name}（{definition.code}），"
            f"{len(definition.measures)} 项措施、{len(definition.topics)} 个宣传重点、{len(definition.units)} 个单位",
            file=out,
        )
        return 0
    ctx = ctx or bootstrap(Settings())
    actor = args.actor or f"cli:{_user()}"
    try:
        result = campaigns.load_definition(text, fmt=args.format, actor=actor, ctx=ctx)
        print(result.message, file=out)
        _attach_materials(definition, args.file.parent, result.campaign_id, actor, ctx, out)
    except ApiError as exc:
        print(f"加载失败：{exc.info['message']}", file=err)
        return 1
    return 0


def _rebuild_coverage(campaign_ref: str | None, ctx: ServiceContext, out: TextIO, err: TextIO) -> int:
    with ctx.db.transaction() as uow:
        campaign_id = None
        if campaign_ref:
            campaign = queries.campaign_by_ref(uow, campaign_ref)
            if campaign is None:
                print(f"没有活动 {campaign_ref}", file=err)
                return 1
            campaign_id = campaign.id
        cells, topics = projection.rebuild(uow, campaign_id)
    print(
        f"覆盖情况投影已重建（{campaign_ref or '全部活动'}）：{cells} 个格子，{topics} 条宣传重点记录",
        file=out,
    )
    return 0


def _attach_materials(
    definition: CampaignDefinition,
    folder: Path,
    campaign_id: str,
    actor: str,
    ctx: ServiceContext,
    out: TextIO,
) -> None:
    stored = {m.code: m for m in materials.list_materials(campaign_id, ctx=ctx)}
    for spec in definition.materials:
        if not spec.file:
            continue
        path = folder / spec.file
        current = stored.get(spec.code)
        if current is not None and current.sha256 == _sha256(path) and current.filename == path.name:
            print(f"参考资料 {spec.code}“{spec.title}”未变化", file=out)
            continue
        with path.open("rb") as stream:
            _, outcome = materials.attach_material(
                campaign_id, spec.code, stream, filename=path.name, title=spec.title, actor=actor, ctx=ctx
            )
        print(f"参考资料 {spec.code}“{spec.title}”{OUTCOMES[outcome]}（{path.name}）", file=out)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
