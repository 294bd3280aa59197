"""Render Chinese e-mails from Jinja2 templates, safely: escaped HTML, single-line headers, a sandbox.

Each kind of e-mail is a template family `<family>` with three parts, `<family>.subject`,
`<family>.txt` and `<family>.html` (files `<part>.j2`), plus the shared layouts `_layout.txt` and
`_layout.html`. A part is looked up, first found wins, in: the admin's overrides stored in the
database, the folder NOTIFY_TEMPLATE_DIR, then the packaged `templates/` folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.header import Header
from email.headerregistry import Address
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import default as default_policy
from email.utils import formataddr, make_msgid
from functools import lru_cache
from importlib import resources
from typing import cast
from zoneinfo import ZoneInfo

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    DictLoader,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    select_autoescape,
)
from jinja2.sandbox import SandboxedEnvironment

_LINEBREAKS = re.compile(r"[\r\n\t\x00-\x1f\x7f\u2028\u2029\x85]+")

FAMILIES = (
    "campaign_published",
    "liaison_reminder",
    "submission_received",
    "evidence_rejected",
    "decision",
    "deadline",
    "supervision",
    "inspection_recorded",
    "circular_published",
    "digest",
    "reviewer_digest",
    "delivery_failed",
    "evidence_rejected_digest",
)
PARTS = ("subject", "txt", "html")
LAYOUTS = ("_layout.txt", "_layout.html")


@dataclass(frozen=True)
class RenderedMail:
    """Subject and both bodies of one e-mail."""

    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class TemplateOptions:
    """Where templates come from and how dates are shown: fixed per process, from settings."""

    template_dir: str | None = None
    timezone: str = "Asia/Shanghai"


def template_names() -> list[str]:
    """Every overridable template part, e.g. `decision.subject`, `_layout.html`."""
    return [f"{family}.{part}" for family in FAMILIES for part in PARTS] + list(LAYOUTS)


def single_line(value: str, limit: int = 250) -> str:
    """Collapse any line breaks or control characters so a value cannot inject headers."""
    return _LINEBREAKS.sub(" ", value).strip()[:limit]


def packaged_source(name: str) -> str:
    """The text of a packaged template part."""
    return (
        resources.files("services.notification")
        .joinpath("templates", f"{name}.j2")
        .read_text(encoding="utf-8")
    )


def render(
    family: str,
    context: Mapping[str, object],
    *,
    options: TemplateOptions,
    overrides: Mapping[str, str] | None = None,
) -> RenderedMail:
    """Render <family>.subject/.txt/.html with the context; raises jinja2 errors for a broken template."""
    env = _environment(
        options, tuple(sorted((overrides or {}).items())), _folder_version(options.template_dir)
    )
    subject = single_line(env.get_template(f"{family}.subject.j2").render(**context))
    text = env.get_template(f"{family}.txt.j2").render(subject=subject, **context)
    html = env.get_template(f"{family}.html.j2").render(subject=subject, **context)
    return RenderedMail(subject=subject, text=text, html=html)


def _folder_version(folder: str | None) -> int:
    """Changes when a file is added to or removed from the folder (Jinja notices edits of known files itself)."""
    try:
        return os.stat(folder).st_mtime_ns if folder else 0
    except OSError:
        return -1


@lru_cache(maxsize=16)
def _environment(
    options: TemplateOptions, overrides: tuple[tuple[str, str], ...], _folder: int
) -> SandboxedEnvironment:
    loaders: list[BaseLoader] = [DictLoader({f"{name}.j2": text for name, text in overrides})]
    if options.template_dir:
        loaders.append(FileSystemLoader(options.template_dir))
    loaders.append(PackageLoader("services.notification", "templates"))
    env = SandboxedEnvironment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    zone = ZoneInfo(options.timezone)
    env.filters["cn_date"] = lambda value: _cn_date(value, zone)
    env.filters["cn_datetime"] = lambda value: _cn_datetime(value, zone)
    return env


def _cn_date(value: date | datetime | None, zone: ZoneInfo) -> str:
    """2020年3月12日 (a datetime is first moved into the configured time zone)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = _local(value, zone).date()
    return f"{value.year}年{value.month}月{value.day}日"


def _cn_datetime(value: datetime | None, zone: ZoneInfo) -> str:
    """2020年3月12日 18:00, in the configured time zone."""
    if value is None:
        return ""
    local = _local(value, zone)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def _local(value: datetime, zone: ZoneInfo) -> datetime:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(zone)


def delivery_message_id(delivery_id: str, domain: str) -> str:
    """The one Message-ID of a delivery, the same on every resend, so a duplicate is recognisably the same mail."""
    return f"<{delivery_id}@{domain}>"


def build_message(
    *,
    sender: str,
    recipient: str,
    mail: RenderedMail,
    message_id_domain: str = "example.org",
    message_id: str | None = None,
) -> Message:
    """A multipart/alternative message with a plain-text and an HTML part, to one recipient."""
    # The classic MIME classes (policy compat32), not EmailMessage: the modern API's header parsing and folding
    # were a quarter of the notification worker's CPU in bench/pipeline.py, and the bytes read the same.
    name, address = parse_recipient(recipient)
    message = MIMEMultipart("alternative")
    message["Subject"] = _header_text("Subject", single_line(mail.subject, 300))
    message["From"] = _sender_header(sender)
    message["To"] = formataddr((single_line(name, 100), address), charset="utf-8")
    message["Message-ID"] = message_id or make_msgid(domain=message_id_domain)
    message.attach(_text_part(mail.text, "plain"))
    message.attach(_text_part(mail.html, "html"))
    return message


def _header_text(name: str, value: str) -> str:
    """A header's value as it may be written: ASCII as it is, anything else as RFC 2047 encoded words."""
    # A Header, which the compat32 policy folds into encoded words (its first line shortened by the name); the
    # stubs type header values as str only.
    return value if value.isascii() else cast(str, Header(value, "utf-8", header_name=name))


def _sender_header(sender: str) -> str:
    """MAIL_FROM as a From header, its display name encoded; encoded as a whole when it does not parse."""
    try:
        name, address = parse_recipient(sender)
    except ValueError:
        return _header_text("From", single_line(sender, 300))
    return formataddr((name, address), charset="utf-8")


def _text_part(text: str, subtype: str) -> MIMEText:
    # base64 carries text in its canonical form (RFC 2045 6.8): CRLF line ends, ending with one
    text = text.replace("\r\n", "\n")
    part = MIMEText((text if text.endswith("\n") else text + "\n").replace("\n", "\r\n"), subtype, "utf-8")
    del part["MIME-Version"]  # the message says it once
    return part


def recipient_header(name: str, email: str) -> str:
    """How a recipient is shown in the delivery log: 李明 <li.ming@example.org> (never encoded)."""
    name, email = single_line(name, 100), single_line(email, 254)
    try:
        return str(Address(display_name=name, addr_spec=email))
    except Exception:  # kept as given: sending it fails permanently, and the log shows why
        return f"{name} <{email}>"


# The header parser takes about 0.1 ms a call, and every mail asks it for the sender's domain and its recipient,
# mostly the same few addresses (a campaign's liaisons and the office). A malformed one raises and is not cached.
@lru_cache(maxsize=4096)
def parse_recipient(recipient: str) -> tuple[str, str]:
    """The display name and address of a delivery's recipient; ValueError when malformed."""
    try:
        addresses = default_policy.header_factory("To", recipient).addresses
    except Exception as exc:  # the header parser raises IndexError and friends on some malformed input
        raise ValueError(f"invalid recipient: {recipient!r}") from exc
    # The parser is lenient (it keeps what it can); only a recipient that reads back exactly is valid.
    if (
        len(addresses) != 1
        or not addresses[0].username
        or not addresses[0].domain
        or str(addresses[0]) != recipient
    ):
        raise ValueError(f"invalid recipient: {recipient!r}")
    return addresses[0].display_name, addresses[0].addr_spec


def sender_domain(sender: str) -> str:
    """The domain of the sender's address, for Message-IDs (example.org when there is none)."""
    try:
        return parse_recipient(sender)[1].rpartition("@")[2] or "example.org"
    except ValueError:
        return "example.org"
