"""Message catalogs. German is the default language, English the second.

Catalogs are compiled from the .po files when the app starts, so the repository holds no
binary .mo files and needs no build step.
"""

from __future__ import annotations

import gettext
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "de"
LOCALE_DIR = Path(__file__).parent / "locale"


def N_(message: str) -> str:
    """Mark a msgid for extraction; it is translated where it is shown."""
    return message


def NP_(singular: str, plural: str) -> tuple[str, str]:  # noqa: N802 - gettext's marker style
    """Mark a msgid and its plural for extraction (keyword NP_:1,2); the count chooses the
    form where it is shown (UserError's `number`)."""
    return singular, plural


class Catalogs:
    def __init__(self) -> None:
        self._translations: dict[str, gettext.NullTranslations] = {"en": gettext.NullTranslations()}
        for language in LANGUAGES:
            po = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
            if language == "en" or not po.exists():
                continue
            with po.open("rb") as handle:
                catalog = read_po(handle, locale=language)
            buffer = BytesIO()
            write_mo(buffer, catalog)
            buffer.seek(0)
            self._translations[language] = Translations(fp=buffer)

    def get(self, language: str) -> gettext.NullTranslations:
        return self._translations.get(language, self._translations[DEFAULT_LANGUAGE])


def negotiate(accept_language: str, fallback: str = DEFAULT_LANGUAGE) -> str:
    """Pick from LANGUAGES by an Accept-Language header (RFC 9110 §12.5.4).

    Hand-written because neither aiohttp nor Babel parses the header itself.
    """
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        ranked.append((-quality, position, tag.strip().lower().split("-")[0]))
    for negative_quality, _, tag in sorted(ranked):
        if negative_quality < 0 and tag in LANGUAGES:
            return tag
    return fallback
