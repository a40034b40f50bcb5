"""Password reset by mail: a one-hour link that works once, all sessions ended, the owner told."""

from __future__ import annotations

from tests.helpers import PASSWORD, log_in, mail_link, mail_text, post_form

NEW = "Kastanie-Leuchtturm-Morgen"


async def request_reset(client, identifier="dr-berg@example.org"):
    return await post_form(client, "/password-reset", {"identifier": identifier})


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
    strip = lambda page: page.replace("dr-berg", "").replace("nobody@example.org", "")  # noqa: E731
    assert strip(known) == strip(unknown)
    await smtp.wait_for(1)
    assert len(smtp.messages) == 1


async def test_expired_link_is_refused(client, clock, smtp, clinician):
    await request_reset(client)
    link = mail_link((await smtp.wait_for(1))[0])
    clock.advance(minutes=61)
    response = await client.get(link, headers={"Accept-Language": "en"})
    assert response.status == 410
    assert "This link has expired." in await response.text()


async def test_tampered_link_is_refused(client, smtp, clinician):
    await request_reset(client)
    link = mail_link((await smtp.wait_for(1))[0])
    response = await client.get(link[:-3] + "xyz", headers={"Accept-Language": "en"})
    assert response.status == 410
    assert "not valid" in await response.text()


async def test_confirmation_token_is_no_reset_token(client, services, engine, smtp, clinician):
    from smartpractice.accounts.tokens import CONFIRM_EMAIL

    async with engine.begin() as conn:
        token = await services.tokens.issue(conn, clinician.user_id, CONFIRM_EMAIL)
    assert (await client.get(f"/password-reset/{token}")).status == 410


async def test_weak_password_reshows_the_form_and_keeps_the_link(client, smtp, clinician):
    await request_reset(client)
    link = mail_link((await smtp.wait_for(1))[0])
    weak = await post_form(client, link, {"new_password": "passwort123", "new_password_repeat": "passwort123"})
    assert weak.status == 400
    ok = await post_form(client, link, {"new_password": NEW, "new_password_repeat": NEW})
    assert ok.status == 303


async def test_requests_are_rate_limited(client, smtp, clinician):
    for _ in range(7):
        await request_reset(client)
    await smtp.wait_for(5)
    assert len(smtp.messages) == 5
