"""Admin use cases: a unit's digest preference, and template overrides checked before they are saved."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jinja2 import TemplateError, nodes
from jinja2.sandbox import SandboxedEnvironment

from services.notification.access import ensure_unit_visible
from services.notification.compose import links, overrides, template_options
from services.notification.models import AUDIT, Preference, TemplateOverride
from services.notification.render import (
    FAMILIES,
    LAYOUTS,
    RenderedMail,
    packaged_source,
    render,
    template_names,
)
from services.notification.samples import sample_context
from shared import audit
from shared.auth import Principal
from shared.http import ApiError, not_found
from shared.request_context import RequestInfo
from shared.runtime import ServiceContext

MAX_TEMPLATE_CHARS = 64 * 1024


@dataclass(frozen=True)
class TemplateView:
    """One template part: the text in force, where it comes from, and the packaged default."""

    name: str
    source: str  # database, folder or package
    text: str
    default_text: str


def get_preference(unit_id: str, *, ctx: ServiceContext, principal: Principal) -> Preference:
    """A unit's preference (one mail per event unless it chose the digest)."""
    with ctx.db.session() as uow:
        ensure_unit_visible(uow, principal, unit_id)
        found = uow.get(Preference, unit_id)
        return found or Preference(unit_id=unit_id, digest=False, updated_at=None)


def set_preference(
    unit_id: str,
    *,
    digest: bool,
    ctx: ServiceContext,
    principal: Principal,
    request: RequestInfo | None = None,
) -> Preference:
    """Choose one daily digest (True) or one mail per event (False) for a unit."""
    with ctx.db.transaction() as uow:
        ensure_unit_visible(uow, principal, unit_id)
        preference = uow.get(Preference, unit_id) or Preference(unit_id=unit_id)
        preference.digest, preference.updated_at = digest, ctx.clock.now()
        uow.add(preference)
        audit.record(
            uow,
            AUDIT,
            principal=principal,
            action="notification.preference_set",
            resource=("unit", unit_id),
            detail={"digest": digest},
            request=request,
        )
    return preference


def list_templates(*, ctx: ServiceContext) -> list[TemplateView]:
    """Every overridable template part with the text in force."""
    with ctx.db.session() as uow:
        stored = overrides(uow)
    return [_view(name, stored, ctx) for name in template_names()]


def get_template(name: str, *, ctx: ServiceContext) -> TemplateView:
    """One template part with the text in force."""
    _known_name(name)
    with ctx.db.session() as uow:
        return _view(name, overrides(uow), ctx)


def put_template(
    name: str, text: str, *, ctx: ServiceContext, principal: Principal, request: RequestInfo | None = None
) -> TemplateView:
    """Store an override after rendering every family that uses it against sample data; 422 if it fails."""
    _known_name(name)
    check_template(name, text, ctx=ctx)
    with ctx.db.transaction() as uow:
        row = uow.get(TemplateOverride, name) or TemplateOverride(name=name)
        previous = row.text
        row.text, row.updated_at = text, ctx.clock.now()
        uow.add(row)
        audit.record(
            uow,
            AUDIT,
            principal=principal,
            action="notification.template_set",
            resource=("template", name),
            detail={"text": text, "previous": previous},
            request=request,
        )
    return get_template(name, ctx=ctx)


def delete_template(
    name: str, *, ctx: ServiceContext, principal: Principal, request: RequestInfo | None = None
) -> None:
    """Drop an override, so the folder's or the packaged template is used again."""
    _known_name(name)
    with ctx.db.transaction() as uow:
        row = uow.get(TemplateOverride, name)
        if row is None:
            raise ApiError(404, "no_override", f"模板未被修改过：{name}", f"template has no override: {name}")
        audit.record(
            uow,
            AUDIT,
            principal=principal,
            action="notification.template_reset",
            resource=("template", name),
            detail={"previous": row.text},
            request=request,
        )
        uow.delete(row)


def preview(family: str, *, ctx: ServiceContext) -> RenderedMail:
    """A family rendered with the templates in force and sample data."""
    if family not in FAMILIES:
        raise not_found("邮件模板", "template family", family)
    with ctx.db.session() as uow:
        stored = overrides(uow)
    return _render_sample(family, stored, ctx=ctx)


def check_template(name: str, text: str, *, ctx: ServiceContext) -> None:
    """Refuse (422) a template that does not parse, escapes user text no more, or fails to render."""
    if len(text) > MAX_TEMPLATE_CHARS:
        raise _invalid(
            f"模板过长（上限 {MAX_TEMPLATE_CHARS} 个字符）",
            f"template longer than {MAX_TEMPLATE_CHARS} characters",
        )
    try:
        tree = SandboxedEnvironment().parse(text)
    except TemplateError as exc:
        raise _invalid(f"模板语法错误：{exc}", f"template syntax error: {exc}") from exc
    if name.endswith(".html") and _unescapes(tree):
        raise ApiError(
            422,
            "template_unsafe",
            "HTML 模板不得关闭转义（|safe、autoescape false）",
            "HTML templates must keep escaping (no |safe, no autoescape false)",
        )
    with ctx.db.session() as uow:
        stored = {**overrides(uow), name: text}
    families = FAMILIES if name in LAYOUTS else (name.split(".", 1)[0],)
    for family in families:
        try:
            mail = _render_sample(family, stored, ctx=ctx)
        except (
            Exception
        ) as exc:  # any failure to render (undefined name, bad filter, sandbox refusal) is the template's
            raise _invalid(
                f"模板无法用示例数据渲染（{family}）：{exc}", f"template fails to render ({family}): {exc}"
            ) from exc
        if name.endswith(".subject") and not mail.subject:
            raise _invalid("邮件主题不能为空", "the subject renders empty")


def _render_sample(family: str, stored: dict[str, str], *, ctx: ServiceContext) -> RenderedMail:
    context = sample_context(family, links=links(ctx.settings), office=ctx.settings.notify_office_name)
    options = template_options(ctx.settings)
    mail = render(family, context, options=options, overrides=stored)
    render(family, {**context, "in_digest": True}, options=options, overrides=stored)  # the digest form too
    return mail


def _unescapes(tree: nodes.Template) -> bool:
    if any(node.name == "safe" for node in tree.find_all(nodes.Filter)):
        return True
    return any(True for _ in tree.find_all((nodes.EvalContextModifier, nodes.ScopedEvalContextModifier)))


def _view(name: str, stored: dict[str, str], ctx: ServiceContext) -> TemplateView:
    default = packaged_source(name)
    if name in stored:
        return TemplateView(name=name, source="database", text=stored[name], default_text=default)
    folder = ctx.settings.notify_template_dir
    if folder and (Path(folder) / f"{name}.j2").is_file():
        return TemplateView(
            name=name,
            source="folder",
            text=(Path(folder) / f"{name}.j2").read_text(encoding="utf-8"),
            default_text=default,
        )
    return TemplateView(name=name, source="package", text=default, default_text=default)


def _known_name(name: str) -> None:
    if name not in template_names():
        raise not_found("邮件模板", "template", name)


def _invalid(message: str, message_en: str) -> ApiError:
    return ApiError(422, "template_invalid", message[:2000], message_en[:2000])
