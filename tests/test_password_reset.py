"""Password reset by mail: a one-hour link that works once, all sessions ended, the owner told."""

from __future__ import annotations

import html
from datetime import timedelta

from smartpractice.times import spoken
from tests.helpers import (
    FORM_TOKEN,
    PASSWORD,
    form_token,
    log_in,
    mail_link,
    mail_settled,
    mail_text,
    post_form,
)

NEW = "Kastanie-Leuchtturm-Morgen"


async def request_reset(client, identifier="dr-berg@example.org", *, token: str | None = None):
    token = token or await form_token(client, "/password-reset")
    return await post_form(client, "/password-reset", {"identifier": identifier, "form_token": token})


async def reset_link(client, smtp, *, mails_before: int = 0) -> str:
    """Dr. Berg asks for a reset: the link of the mail that comes."""
    await request_reset(client)
    return mail_link((await smtp.wait_for(mails_before + 1))[mails_before])


async def test_the_reset_form_sent_twice_mails_one_link_that_works(client, smtp, clinician):
    """A double click or a reload of "Send link": one mail, whose link a second one does not void."""
    token = await form_token(client, "/password-reset")
    for _ in range(2):
        page = await request_reset(client, token=token)
        assert page.status == 200 and 'role="status"' in await page.text()
    await mail_settled(client.app)
    [message] = smtp.messages
    link = mail_link(message)
    done = await post_form(client, link, {"new_password": NEW, "new_password_repeat": NEW})
    assert done.status == 303 and done.headers["Location"] == "/login?reset=done"


async def test_an_outdated_reset_form_is_shown_again_with_what_was_typed(client, smtp, clinician):
    page = await request_reset(client, "dr-berg", token="kurz")
    text = await page.text()
    assert page.status == 400 and 'role="alert"' in text and 'value="dr-berg"' in text
    await mail_settled(client.app)
    assert smtp.messages == []


async def test_reset_by_mail_end_to_end(client, other_browser, smtp, clinician):
    await log_in(other_browser, "dr-berg")
    page = await request_reset(client)
    assert page.status == 200
    [message] = await smtp.wait_for(1)
    link = mail_link(message)
    assert link.startswith("/password-reset/")
    form = await client.get(link)
    assert form.status == 200
    done = await post_form(client, link, {"new_password": NEW, "new_password_repeat": NEW})
    assert done.status == 303 and done.headers["Location"] == "/login?reset=done"
    # Every session ended, including ones on other devices.
    assert (await other_browser.get("/account", allow_redirects=False)).status == 303
    assert (await log_in(client, "dr-berg", PASSWORD)).status == 401
    assert (await log_in(client, "dr-berg", NEW)).status == 303
    # The owner is told.
    messages = await smtp.wait_for(2)
    assert "Ihr Passwort wurde geändert" in messages[1]["Subject"] or "geändert" in mail_text(messages[1])
    # The link works once.
    again = await post_form(client, link, {"new_password": NEW + "x", "new_password_repeat": NEW + "x"})
    assert again.status == 410


async def test_unknown_account_gets_the_same_page_and_no_mail(client, smtp, clinician):
    known = await (await request_reset(client, "dr-berg")).text()
    unknown = await (await request_reset(client, "nobody@example.org")).text()
    # Each answer carries a fresh one-time token for the next sending; nothing else may differ.
    strip = lambda page: FORM_TOKEN.sub("", page.replace("dr-berg", "").replace("nobody@example.org", ""))  # noqa: E731
    assert strip(known) == strip(unknown)
    await smtp.wait_for(1)
    assert len(smtp.messages) == 1


async def test_expired_link_is_refused_saying_when_it_expired(client, clock, smtp, clinician):
    sent = clock.now()
    link = await reset_link(client, smtp)
    clock.advance(minutes=61)
    response = await client.get(link, headers={"Accept-Language": "en"})
    assert response.status == 410
    # In the practice's zone, as people say it.
    when = spoken(sent + timedelta(hours=1), "Europe/Berlin", "en")
    assert f"This link expired on {when}. You can ask for a new one." in html.unescape(await response.text())
    german = html.unescape(await (await client.get(link, headers={"Accept-Language": "de"})).text())
    assert f"Dieser Link ist am {spoken(sent + timedelta(hours=1), 'Europe/Berlin', 'de')} abgelaufen." in german


async def test_a_link_replaced_by_a_newer_one_says_so(client, clock, smtp, clinician):
    first = await reset_link(client, smtp)
    clock.advance(minutes=2)
    second = await reset_link(client, smtp, mails_before=1)
    replaced = await client.get(first, headers={"Accept-Language": "de"})
    assert replaced.status == 410
    text = html.unescape(await replaced.text())
    assert "neuere E-Mail mit einem neuen Link" in text and "bereits benutzt" not in text
    # A link that was used says that, not "replaced".
    assert (await post_form(client, second, {"new_password": NEW, "new_password_repeat": NEW})).status == 303
    used = html.unescape(await (await client.get(second, headers={"Accept-Language": "de"})).text())
    assert "bereits benutzt" in used and "neuere E-Mail" not in used


async def test_tampered_link_is_refused(client, smtp, clinician):
    link = await reset_link(client, smtp)
    response = await client.get(link[:-3] + "xyz", headers={"Accept-Language": "en"})
    assert response.status == 410
    assert "not valid" in await response.text()


async def test_confirmation_token_is_no_reset_token(client, services, engine, smtp, clinician):
    from smartpractice.accounts.tokens import CONFIRM_EMAIL

    async with engine.begin() as conn:
        token = await services.tokens.issue(conn, clinician.user_id, CONFIRM_EMAIL)
    assert (await client.get(f"/password-reset/{token}")).status == 410


async def test_weak_password_reshows_the_form_and_keeps_the_link(client, smtp, clinician):
    link = await reset_link(client, smtp)
    weak = await post_form(client, link, {"new_password": "passwort123", "new_password_repeat": "passwort123"})
    assert weak.status == 400
    ok = await post_form(client, link, {"new_password": NEW, "new_password_repeat": NEW})
    assert ok.status == 303


async def test_requests_are_rate_limited(client, smtp, clinician):
    for _ in range(7):
        await request_reset(client)
    await smtp.wait_for(5)
    assert len(smtp.messages) == 5
