"""Mails from templates: `templates/mail/<kind>.txt` and `.html`, each setting `subject`.

German by default, English by the recipient's language, through the same catalogs as
the pages. No personal health data goes into a mail: templates get names and links only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2

from smartpractice.i18n import Catalogs

TEMPLATES = Path(__file__).parents[1] / "templates" / "mail"


@dataclass(frozen=True)
class ComposedMail:
    subject: str
    text: str
    html: str


@jinja2.pass_context
def _gettext(context, message: str) -> str:
    return context["translations"].gettext(message)


@jinja2.pass_context
def _ngettext(context, singular: str, plural: str, count: int) -> str:
    return context["translations"].ngettext(singular, plural, count)


def _environment(autoescape: bool) -> jinja2.Environment:
    # The text variant is plain text, not HTML, so it must not be escaped.
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=autoescape,  # noqa: S701
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]  # jinja2.ext.i18n adds it
    return environment


class MailComposer:
    def __init__(self, *, catalogs: Catalogs, service_name: str = "smartpractice") -> None:
        self._catalogs = catalogs
        self._service_name = service_name
        self._text = _environment(autoescape=False)
        self._html = _environment(autoescape=True)

    def compose(self, kind: str, language: str, context: dict) -> ComposedMail:
        full = {"translations": self._catalogs.get(language), "language": language,
                "service_name": self._service_name, **context}
        text_template = self._text.get_template(f"{kind}.txt")
        text = text_template.render(full)
        # Each mail template sets `subject`, a module attribute mypy cannot see.
        subject = str(getattr(text_template.make_module(full), "subject")).strip()  # noqa: B009
        html = self._html.get_template(f"{kind}.html").render(full)
        return ComposedMail(subject=subject, text=text, html=html)
