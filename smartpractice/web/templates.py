"""Jinja environments, one per language, whose compiled templates already hold the
messages and URLs that never change: a page then looks up only what is its own.

The dashboard's templates called `_()` and `url()` about thirty times per page, each call
going through Jinja's context (`Context.call`) and a catalog or cache look-up: a third of
rendering (docs/performance.md). Messages without placeholders and URLs made of
constants are the same for every request in one language, so they are put into the
template when it is compiled, for that language's environment."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import cast

import jinja2
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream
from markupsafe import Markup

MESSAGE_CALLS = frozenset({"_", "gettext"})


def formatted(message: Markup, variables: dict) -> Markup:
    """As Jinja's newstyle gettext: `%` always formats, the values escaped."""
    # Most messages have no placeholder: `%` with nothing to fill in would only copy them.
    return message % variables if variables or "%" in message else message


def message(translations, text: str) -> Markup:
    # Markup: the messages are ours, from the catalogs, as Jinja's own callables trust them.
    return formatted(Markup(translations.gettext(text)), {})  # noqa: S704


class Constants(Extension):
    """At compile time, `_("…")` or `gettext("…")` with one string and nothing else becomes
    that message in the environment's language, marked safe as the callables mark it at
    run time; `url("name", part="…")` with only strings becomes the URL. Anything else (a
    message with placeholders, a URL with a variable part) stays a call."""

    def __init__(self, environment: jinja2.Environment) -> None:
        super().__init__(environment)
        environment.extend(constant_translations=None)

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        tokens = list(stream)
        position = 0
        while position < len(tokens):
            folded = self._fold(tokens, position)
            if folded is None:
                yield tokens[position]
                position += 1
            else:
                replacement, position = folded
                yield from replacement

    def _fold(self, tokens: list[Token], at: int) -> tuple[list[Token], int] | None:
        name = tokens[at]
        if name.type != "name" or (at and tokens[at - 1].type == "dot"):
            return None
        kinds = [token.type for token in tokens[at + 1 : at + 4]]
        line = name.lineno
        translations = self.environment.constant_translations  # type: ignore[attr-defined]
        if name.value in MESSAGE_CALLS and kinds == ["lparen", "string", "rparen"] and translations is not None:
            text = str(message(translations, tokens[at + 2].value))
            return [Token(line, "string", text), Token(line, "pipe", "|"), Token(line, "name", "safe")], at + 4
        if name.value == "url" and kinds[:2] == ["lparen", "string"]:
            return self._url(tokens, at, line)
        return None

    def _url(self, tokens: list[Token], at: int, line: int) -> tuple[list[Token], int] | None:
        end, parts = at + 3, {}
        while [token.type for token in tokens[end : end + 4]] == ["comma", "name", "assign", "string"]:
            parts[tokens[end + 1].value] = tokens[end + 3].value
            end += 4
        if end >= len(tokens) or tokens[end].type != "rparen":
            return None
        try:
            built = cast("Callable[..., str]", self.environment.globals["url"])(tokens[at + 2].value, **parts)
        except (KeyError, ValueError, TypeError):
            return None  # a mistake in the template: it fails when rendered, as it always did
        return [Token(line, "string", built)], end + 1


def environments(
    loader: jinja2.BaseLoader, catalogs: Mapping[str, object], globals_: dict[str, object],
    filters: dict[str, Callable], gettext: Callable, ngettext: Callable,
) -> dict[str, jinja2.Environment]:
    """One environment per language of `catalogs`, each folding its own messages."""
    made = {}
    for language, translations in catalogs.items():
        environment = jinja2.Environment(
            loader=loader,
            autoescape=jinja2.select_autoescape(default=True),
            extensions=["jinja2.ext.i18n", Constants],
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            # Templates change with a release, not while serving: no stat() per template per request.
            auto_reload=False,
        )
        environment.constant_translations = translations  # type: ignore[attr-defined]
        # For templates rendered without render()'s context (macros imported without it).
        environment.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]  # jinja2.ext.i18n adds it
        environment.globals.update(globals_)
        environment.filters.update(filters)
        made[language] = environment
    return made
