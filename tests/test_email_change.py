"""Changing one's own email address: re-authentication, a one-hour link to the new address,
notices to the old one, other sessions ended, taken addresses not revealed."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from smartpractice.storage import practices as practice_store
from smartpractice.storage import users as user_store
from smartpractice.storage.audit import AuditFilter
from smartpractice.storage.tables import link_tokens
from tests.helpers import (
    PASSWORD,
    add_member,
    form_token,
    log_in,
    mail_link,
    mail_settled,
    mail_text,
    post_form,
    totp_code,
)

EN = {"Accept-Language": "en"}
OLD = "dr-berg@example.org"
NEW = "berg.neu@example.org"


async def ask(client, new_email=NEW, password=PASSWORD, code=None, **kwargs):
    data = {"new_email": new_email, "current_password": password,
            "form_token": kwargs.pop("form_token", None) or await form_token(client, "/account")}
    if code is not None:
        data["code"] = code
    return await post_form(client, "/account/email", data, **kwargs)


async def ask_as_staff(client, new_email=NEW):
    return await ask(client, new_email, code=await totp_code(client.app, "dr-berg"))


async def user_of(engine, member):
    async with engine.connect() as conn:
        return await user_store.user_by_id(conn, member.user_id)


@pytest.fixture
async def anna(client, app, practice):
    """A patient of the practice, logged in in `client`; her address before any change."""
    await add_member(app, practice, "patient", "anna")
    await log_in(client, "anna")
    return "anna@example.org"


async def staff_link(client, smtp):
    """Dr. Berg logs in and asks for NEW: the link mailed there (the old address is told too)."""
    await log_in(client, "dr-berg")
    await ask_as_staff(client)
    await smtp.wait_for(2)
    return mail_link(smtp.to(NEW)[0])


async def test_staff_changes_email_by_link_and_logs_in_with_it(client, other_browser, engine, smtp, clinician):
    await log_in(other_browser, "dr-berg")
    await log_in(client, "dr-berg")
    page = await (await client.get("/account", headers=EN)).text()
    assert 'name="new_email"' in page and 'name="code"' in page
    asked = await ask_as_staff(client)
    assert asked.status == 303 and asked.headers["Location"] == "/account/email/sent"
    assert "Check your inbox" in await (await client.get("/account/email/sent", headers=EN)).text()
    await smtp.wait_for(2)
    [confirm_mail] = smtp.to(NEW)
    [requested] = smtp.to(OLD)
    assert requested["Subject"] == "Eine Änderung Ihrer E-Mail-Adresse wurde beantragt"
    assert NEW in mail_text(requested) and requested.get_body(preferencelist=("html",)) is not None
    link = mail_link(confirm_mail)
    assert link.startswith("/email-change/")
    # Opening the link (as a mail scanner would) changes nothing; the button does.
    form = await client.get(link, headers=EN)
    assert form.status == 200 and NEW in await form.text()
    assert (await user_of(engine, clinician)).email == OLD
    done = await post_form(client, link, {}, headers=EN)
    assert done.status == 200 and NEW in await done.text()
    # This browser stays logged in; every other session ended (ASVS 7.4.3).
    assert (await client.get("/account", allow_redirects=False)).status == 200
    assert (await other_browser.get("/account", allow_redirects=False)).status == 303
    # The old address is told a second time.
    await smtp.wait_for(3)
    changed = smtp.to(OLD)[1]
    assert changed["Subject"] == "Ihre E-Mail-Adresse wurde geändert" and NEW in mail_text(changed)
    client.session.cookie_jar.clear()
    assert (await log_in(client, OLD)).status == 401
    assert (await log_in(client, NEW)).status == 303


async def test_both_steps_are_audited_in_every_practice_of_the_staff_member(client, services, engine, smtp, practice, clinician):
    second = (await services.practices.create("Praxis am See", admin_email="see@example.org", admin_username="see")).practice
    async with engine.begin() as conn:
        await practice_store.add_member(
            conn, practice_id=second.id, user_id=clinician.user_id, role="clinician", now=services.clock.now()
        )
    await post_form(client, await staff_link(client, smtp), {})
    for practice_id in (practice.id, second.id):
        for action in ("email_change_requested", "email_changed"):
            [entry] = await services.audit.entries(AuditFilter(practice_id=practice_id, action=action))
            assert entry.actor_user_id == clinician.user_id and entry.object_id == str(clinician.user_id)


async def test_patient_changes_email_without_a_code(client, services, smtp, anna):
    assert 'name="code"' not in await (await client.get("/account")).text()
    assert (await ask(client, "anna.neu@example.org")).status == 303
    await smtp.wait_for(2)
    assert (await post_form(client, mail_link(smtp.to("anna.neu@example.org")[0]), {})).status == 200
    await smtp.wait_for(3)
    assert len(smtp.to(anna)) == 2
    client.session.cookie_jar.clear()
    assert (await log_in(client, "anna.neu@example.org")).status == 303
    # Patients make no audit entries: they are no staff.
    assert await services.audit.entries(AuditFilter(action="email_changed")) == []


async def test_wrong_password_is_refused_and_keeps_the_typed_address(client, smtp, anna):
    refused = await ask(client, "anna.neu@example.org", password="wrong-" + PASSWORD, headers=EN)
    assert refused.status == 400
    page = await refused.text()
    assert "Your current password is not correct." in page
    assert 'value="anna.neu@example.org"' in page and PASSWORD not in page
    assert smtp.messages == []


async def test_staff_without_a_code_or_with_a_wrong_one_is_refused(client, services, smtp, clinician):
    await log_in(client, "dr-berg")
    missing = await ask(client, code="", headers=EN)
    assert missing.status == 400
    assert "current code from your authenticator app" in await missing.text()
    wrong = await ask(client, code="000000", headers=EN)
    assert wrong.status == 400 and "This code is not correct" in await wrong.text()
    assert smtp.messages == []


async def test_bad_addresses_reshow_the_form(client, smtp, anna):
    invalid = await ask(client, "not-an-address", headers=EN)
    assert invalid.status == 400 and "valid email address" in await invalid.text()
    same = await ask(client, anna.upper(), headers=EN)
    assert same.status == 400 and "already your email address" in await same.text()


async def test_link_works_once(client, services, smtp, clinician):
    link = await staff_link(client, smtp)
    assert (await post_form(client, link, {})).status == 200
    again = await post_form(client, link, {}, headers=EN)
    assert again.status == 410 and "already been used" in await again.text()


async def test_link_expires_after_an_hour(client, clock, services, smtp, clinician):
    link = await staff_link(client, smtp)
    clock.advance(minutes=61)
    assert (await client.get(link)).status == 410
    late = await post_form(client, link, {}, headers=EN)
    assert late.status == 410 and "This link expired on " in await late.text()
    assert (await log_in(client, NEW)).status == 401


async def test_tampered_and_foreign_links_are_refused(client, services, engine, smtp, clinician):
    from smartpractice.accounts.tokens import RESET_PASSWORD

    link = await staff_link(client, smtp)
    assert (await post_form(client, link[:-3] + "xyz", {})).status == 410
    async with engine.begin() as conn:
        reset = await services.tokens.issue(conn, clinician.user_id, RESET_PASSWORD)
    assert (await post_form(client, f"/email-change/{reset}", {})).status == 410


async def test_a_newer_request_replaces_the_older_link(client, smtp, anna):
    await ask(client, "erste@example.org")
    await ask(client, "zweite@example.org")
    await smtp.wait_for(4)
    assert (await post_form(client, mail_link(smtp.to("erste@example.org")[0]), {})).status == 410
    assert (await post_form(client, mail_link(smtp.to("zweite@example.org")[0]), {})).status == 200


async def test_taken_address_is_not_revealed(client, smtp, anna):
    free = await ask(client, "frei@example.org")
    taken = await ask(client, "chef@example.org")
    assert free.status == taken.status == 303 and free.headers["Location"] == taken.headers["Location"]
    await smtp.wait_for(3)
    # The old address hears of both requests alike; the other account's owner hears nothing.
    assert len(smtp.to(anna)) == 2 and len(smtp.to("frei@example.org")) == 1
    assert smtp.to("chef@example.org") == []
    # The taken request also voided the earlier link.
    assert (await post_form(client, mail_link(smtp.to("frei@example.org")[0]), {})).status == 410


async def test_address_taken_meanwhile_is_refused(client, app, smtp, practice, anna):
    await ask(client, "zweit@example.org")
    await smtp.wait_for(2)
    await add_member(app, practice, "patient", "zweit")
    refused = await post_form(client, mail_link(smtp.to("zweit@example.org")[0]), {}, headers=EN)
    assert refused.status == 409
    assert "now belongs to another account" in await refused.text()
    client.session.cookie_jar.clear()
    assert (await log_in(client, anna)).status == 303


async def test_requests_are_rate_limited(client, smtp, anna):
    for number in range(5):
        assert (await ask(client, f"neu{number}@example.org")).status == 303
    limited = await ask(client, "neu5@example.org", headers=EN)
    assert limited.status == 400 and "too many changes" in await limited.text()


async def test_a_form_sent_again_asks_once_and_mails_once(client, services, engine, smtp, practice, clinician):
    """A reload or a double click: the second sending brings the TOTP code the first one
    used up, and leads to the same page without a second link, notice or failed login."""
    await log_in(client, "dr-berg")
    token = await form_token(client, "/account")
    code = await totp_code(client.app, "dr-berg")
    answers = [await ask(client, code=code, form_token=token) for _ in range(2)]
    assert [a.status for a in answers] == [303, 303], [await a.text() for a in answers]
    assert {a.headers["Location"] for a in answers} == {"/account/email/sent"}
    await mail_settled(client.app)
    assert len(smtp.to(NEW)) == 1 and len(smtp.to(OLD)) == 1 and len(smtp.messages) == 2
    async with engine.connect() as conn:
        tokens = (await conn.execute(select(func.count()).select_from(link_tokens)
                                     .where(link_tokens.c.purpose == "change_email"))).scalar_one()
    assert tokens == 1
    for action, expected in (("email_change_requested", 1), ("login_failed", 0)):
        entries = await services.audit.entries(AuditFilter(practice_id=practice.id, action=action))
        assert len(entries) == expected, action
