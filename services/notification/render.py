"""Render Chinese e-mails from Jinja2 templates, safely: escaped HTML, single-line headers."""
from __future__ import annotations

import re
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from functools import lru_cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

_LINEBREAKS = re.compile(r"[\r\n\t\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class RenderedMail:
    """Subject and both bodies of one e-mail."""

    subject: str
    text: str
    html: str


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("services.notification", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
    )


def single_line(value: str, limit: int = 250) -> str:
    """Collapse any line breaks or control characters so a value cannot inject headers."""
    return _LINEBREAKS.sub(" ", value).strip()[:limit]


def render(template: str, context: dict) -> RenderedMail:
    """Render <template>.subject/.txt/.html with the context."""
    env = _environment()
    subject = single_line(env.get_template(f"{template}.subject.j2").render(**context))
    text = env.get_template(f"{template}.txt.j2").render(subject=subject, **context)
    html = env.get_template(f"{template}.html.j2").render(subject=subject, **context)
    return RenderedMail(subject=subject, text=text, html=html)


def build_message(*, sender: str, recipient_name: str, recipient_email: str, mail: RenderedMail, message_id_domain: str = "example.org") -> EmailMessage:
    """A multipart/alternative message with a plain-text and an HTML part."""
    message = EmailMessage()
    message["Subject"] = mail.subject
    message["From"] = sender
    message["To"] = Address(display_name=single_line(recipient_name, 100), addr_spec=recipient_email)
    message["Message-ID"] = make_msgid(domain=message_id_domain)
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    return message


def recipient_header(name: str, email: str) -> str:
    """How a recipient is shown in the delivery log."""
    return formataddr((single_line(name, 100), email))
