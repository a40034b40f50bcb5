"""German first, English second; every message in the catalogs."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from smartpractice.errors import UserError
from smartpractice.i18n import LOCALE_DIR, NP_, Catalogs, negotiate
from tests.helpers import csrf_token, log_in

ROOT = Path(__file__).resolve().parents[1]


def test_accept_language_negotiation():
    assert negotiate("") == "de"
    assert negotiate("en-US,en;q=0.9") == "en"
    assert negotiate("fr-FR, en;q=0.5, de;q=0.8") == "de"
    assert negotiate("fr, it") == "de"
    assert negotiate("en;q=0, de;q=0.1") == "de"
    assert negotiate("en;q=bogus") == "de"


async def test_pages_are_german_by_default(client):
    page = await (await client.get("/login")).text()
    assert '<html lang="de">' in page
    assert "Anmelden" in page


async def test_english_by_accept_language(client):
    page = await (await client.get("/login", headers={"Accept-Language": "en"})).text()
    assert '<html lang="en">' in page and "Log in" in page


async def test_chosen_language_sticks_for_visitors_and_users(client, clinician):
    token = await csrf_token(client, "/login")
    response = await client.post("/language", data={"language": "en", "csrf_token": token})
    assert response.status == 200  # followed the redirect back home -> login
    assert "Log in" in await (await client.get("/login")).text()
    await log_in(client, "dr-berg")
    token = await csrf_token(client, "/account")
    await client.post("/language", data={"language": "de", "csrf_token": token})
    client.session.cookie_jar.clear()
    await log_in(client, "dr-berg")
    # The user's stored choice wins over the browser's header.
    page = await (await client.get("/account", headers={"Accept-Language": "en"})).text()
    assert "Mein Konto" in page


async def test_unknown_language_is_refused(client):
    token = await csrf_token(client)
    response = await client.post("/language", data={"language": "xx", "csrf_token": token})
    assert response.status == 400


def used_messages() -> set[str]:
    # Mail texts (.txt) too: a missing one would leave English in a German mail.
    method_map = [("smartpractice/**.py", "python"), ("templates/**.html", "jinja2"), ("templates/**.txt", "jinja2")]
    options = {pattern: {"extensions": "jinja2.ext.i18n"} for pattern in ("templates/**.html", "templates/**.txt")}
    found = extract_from_dir(
        ROOT, method_map, options_map=options, keywords={"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "NP_": (1, 2)}
    )
    return {message if isinstance(message, str) else message[0] for _, _, message, _, _ in found}


def german_catalog() -> dict[str, str]:
    """msgid (a plural's singular) → its German text; a plural counts as translated only
    with every form."""
    with (LOCALE_DIR / "de" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle)
    return {
        message.id[0] if message.pluralizable else message.id:
            ("" if not all(message.string) else message.string[0]) if message.pluralizable else message.string
        for message in catalog if message.id
    }


def test_every_message_has_a_german_translation():
    used = used_messages()
    translated = {msgid for msgid, text in german_catalog().items() if text}
    assert used, "extraction found nothing"
    assert sorted(used - translated) == []


def test_the_catalog_holds_no_message_that_nothing_shows():
    assert sorted(set(german_catalog()) - used_messages()) == []


def test_a_count_chooses_the_plural_form_in_both_languages():
    # "Es bleiben 1 Versuche" was what a guest read: the count now picks the form.
    german, english = Catalogs().get("de"), Catalogs().get("en")
    wrong = lambda left: UserError("tan_wrong", NP_("This TAN is not correct. %(left)d more try is left.",  # noqa: E731
                                                    "This TAN is not correct. %(left)d more tries are left."),
                                   number="left", left=left)
    assert wrong(1).text(german) == "Diese TAN ist nicht richtig. Sie haben noch einen Versuch."
    assert wrong(4).text(german) == "Diese TAN ist nicht richtig. Sie haben noch 4 Versuche."
    assert wrong(1).text(english) == wrong(1).text() == "This TAN is not correct. 1 more try is left."
    assert wrong(4).text() == "This TAN is not correct. 4 more tries are left."
    locked = UserError("login_locked", NP_("Too many failed attempts. Please try again in %(minutes)d minute.",
                                           "Too many failed attempts. Please try again in %(minutes)d minutes."),
                       number="minutes", minutes=1)
    assert locked.text(german).endswith("in 1 Minute erneut.")


def german_texts() -> dict[str, str]:
    """msgid (a plural's singular) → every German form, joined."""
    with (LOCALE_DIR / "de" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle)
    return {(m.id[0] if m.pluralizable else m.id): " | ".join(m.string) if m.pluralizable else m.string
            for m in catalog if m.id}


# What first users tripped over (issue 14); each pattern once found in the German catalog.
TRIPPED_OVER = {
    # One name for the clinician role: "Behandelnde" (a "behandelnde Person"), not
    # "Behandler/in", "die Ärztin oder der Arzt" or "Therapeutin oder Therapeut". (Telling
    # a patient about "Ihre Ärztin, Ihr Arzt" is no role name.)
    "clinician role": re.compile(r"Behandler|(?:der|die|dem|als) Ärztin oder (?:der |dem |des )?Arzt|Therapeutin oder Therapeut"),
    "doubled request": re.compile(r"[Bb]itte bitten"),
    # "enthaltene Behandelnde: 1": a count says what it counts in a sentence.
    "people counted after a colon": re.compile(r"(?:Behandelnde|Personen|Teilnehmende)\w*: %\(num\)d"),
}


def test_the_german_wording_first_users_tripped_over_stays_fixed():
    found = [f"{name}: {text!r}" for text in german_texts().values() for name, pattern in TRIPPED_OVER.items()
             if pattern.search(text)]
    assert found == []


def test_logging_in_and_signing_a_practice_up_are_different_words():
    texts = german_texts()
    assert texts["Log in"] == "Anmelden"
    signing_up = {msgid: text for msgid, text in texts.items() if re.search(r"\bsign(?:ing|s)?[- ]?ups?\b", msgid, re.I)}
    assert {"Sign up", "Sign up your practice"} <= set(signing_up)
    assert {msgid: text for msgid, text in signing_up.items() if "nmeld" in text} == {}


async def test_prices_say_what_they_count(client):
    page = await (await client.get("/pricing", headers={"Accept-Language": "de"})).text()
    assert "für 1 behandelnde Person" in page and "für bis zu 3 Behandelnde" in page and "mit 3 Behandelnden" in page
    english = await (await client.get("/pricing", headers={"Accept-Language": "en"})).text()
    assert "39 € for 1 clinician" in english and "with 1 clinician" in english and "with 3 clinicians" in english
