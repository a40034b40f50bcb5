"""Every page of the URL map, opened as each kind of visitor in German and in English: none
answers 500, and none mixes the languages (a German page showing one of the catalog's
English sentences, or an English page a German one)."""

from __future__ import annotations

import html
import re
from datetime import timedelta

from babel.messages.pofile import read_po

from smartpractice.i18n import LOCALE_DIR
from smartpractice.onboarding.invitations import Invitee
from smartpractice.scheduling.consultations import Appointment
from tests.helpers import add_member, log_in, second_browser

# Not pages: sockets, files, machine-readable answers.
NOT_PAGES = re.compile(r"/ws$|\.(svg|png|csv|ics|json)$|^/(healthz|readyz|metrics|api/|static)")
TAGS = re.compile(r"<script.*?</script>|<style.*?</style>|<[^>]+>", re.S)


def sentences() -> tuple[list[str], list[str]]:
    """English msgids and their German texts of four words or more, without placeholders
    or markup: long enough that finding one on a page of the other language is no accident."""
    with (LOCALE_DIR / "de" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle)
    english, german = [], []
    for message in catalog:
        if not message.id or message.pluralizable or not message.string or message.id == message.string:
            continue
        if "%" in message.id or "<" in message.id or len(message.id.split()) < 4:
            continue
        english.append(message.id)
        german.append(message.string)
    return english, german


def visible_text(page: str) -> str:
    return " ".join(html.unescape(TAGS.sub(" ", page)).split())


def page_paths(app, values: dict[str, str]) -> list[str]:
    paths = []
    for resource in app.router.resources():
        if not any(route.method == "GET" for route in resource):
            continue
        template = re.sub(r"\{(\w+)(:[^}]*)?\}", lambda m: "{" + m.group(1) + "}", resource.canonical)
        if NOT_PAGES.search(template):
            continue
        key = template.split("/")[-2] if template.endswith("{id}") else ""
        filled = template.replace("{id}", values.get(f"id:{key}", values["id"]))
        for name, value in values.items():
            filled = filled.replace("{" + name + "}", value)
        paths.append(filled)
    return sorted(paths)


async def test_every_page_opens_for_everyone_in_one_language(client, app, services, clock, practice, clinician):
    erika = await add_member(app, practice, "patient", "erika")
    await add_member(app, practice, "admin", "anna-admin")
    plan = Appointment.parse("Kontrolle", clock.now() + timedelta(days=1), 20, now=clock.now())
    scheduled = await services.consultations.schedule(
        practice, clinician.user_id, plan, patient_ids=[erika], invitees=[Invitee.parse("gast@example.org", "Gabi Gast")])
    [invitation] = await services.invitations.list(practice.id)
    consultation = str(scheduled.consultation.id)
    values = {"slug": practice.slug, "user_id": str(erika), "id": consultation, "id:invitations": str(invitation.id),
              "token": "x" * 43, "code": "ABCD-EFGH"}
    paths = page_paths(app, values)
    assert f"/p/{practice.slug}/consultations/{consultation}" in paths and "/invitation/" + "x" * 43 in paths
    english, german = sentences()
    # The check can see a language: the German privacy page holds German sentences, and
    # the English one the same sentences in English.
    for language, own in (("de", german), ("en", english)):
        privacy = visible_text(await (await client.get("/privacy", headers={"Accept-Language": language})).text())
        assert sum(sentence in privacy for sentence in own) >= 3, language

    failures = []
    for role in ("visitor", "erika", "dr-berg", "anna-admin"):
        async with second_browser(client) as browser:
            if role != "visitor":
                assert (await log_in(browser, role)).status == 303, role
            for language, foreign in (("de", english), ("en", german)):
                for path in paths:
                    answer = await browser.get(path, headers={"Accept-Language": language})
                    if answer.status >= 500:
                        failures.append(f"{role} {language} {path}: {answer.status}")
                        continue
                    if answer.content_type != "text/html":
                        continue
                    text = visible_text(await answer.text())
                    mixed = [sentence for sentence in foreign if sentence in text]
                    if mixed:
                        failures.append(f"{role} {language} {path}: {mixed[:3]}")
    assert failures == [], "\n".join(failures)
    assert len(paths) >= 40, paths
