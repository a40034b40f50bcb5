"""Confirmation links: once, for 48 hours, for their purpose only; a fresh mail on request."""

from __future__ import annotations

from smartpractice.accounts.tokens import RESET_PASSWORD
from tests.helpers import (
    PASSWORD,
    add_member,
    confirm,
    create_patient,
    english,
    form_token,
    generated_password,
    log_in,
    mail_link,
    mail_settled,
    mail_text,
    patient_id,
    post_form,
    resend_confirmation,
)


async def unconfirmed_patient(client, smtp, practice) -> tuple[str, str]:
    """Erika, created by the practice and not yet confirmed: (confirmation link, initial password)."""
    await log_in(client, "dr-berg")
    initial = await generated_password(await create_patient(client, practice.slug))
    await post_form(client, "/logout", {})
    english(client)
    return mail_link((await smtp.wait_for(1))[-1]), initial


async def assert_refused(browser, link: str, message: str, status: int = 410) -> None:
    for response in (await browser.get(link), await post_form(browser, link, {})):
        assert response.status == status
        page = await response.text()
        assert message in page
        assert "Send the confirmation mail again" in page


async def test_link_expires_after_48_hours(client, smtp, clock, practice, clinician):
    link, initial = await unconfirmed_patient(client, smtp, practice)
    clock.advance(hours=49)
    await assert_refused(client, link, "This link expired on ")
    refused = await log_in(client, "erika", initial)
    assert "Please confirm your email address first" in await refused.text()


async def test_link_still_works_just_before_48_hours(client, smtp, clock, practice, clinician):
    link, _ = await unconfirmed_patient(client, smtp, practice)
    clock.advance(hours=47, minutes=59)
    assert "you can log in now" in await (await confirm(client, link)).text()


async def test_used_link_is_refused_and_points_to_login(client, smtp, practice, clinician):
    link, _ = await unconfirmed_patient(client, smtp, practice)
    await confirm(client, link)
    await assert_refused(client, link, "This link has already been used.")
    assert "If you have already confirmed your email address, you can simply log in." in await (await client.get(link)).text()


async def test_tampered_and_unknown_links_are_refused(client, smtp, practice, clinician):
    link, initial = await unconfirmed_patient(client, smtp, practice)
    token = link.rsplit("/", 1)[1]
    tampered = "/confirm/" + token[:-1] + ("A" if token[-1] != "A" else "B")
    await assert_refused(client, tampered, "This link is not valid.")
    await assert_refused(client, "/confirm/" + "x" * 500, "This link is not valid.")
    await assert_refused(client, "/confirm/nothing-like-a-token", "This link is not valid.")
    assert (await log_in(client, "erika", initial)).status == 401


async def test_link_of_another_purpose_does_not_confirm(client, smtp, services, engine, practice, clinician):
    await unconfirmed_patient(client, smtp, practice)
    async with engine.begin() as conn:
        reset_token = await services.tokens.issue(conn, await patient_id(engine), RESET_PASSWORD)
    await assert_refused(client, f"/confirm/{reset_token}", "This link is not valid.")


async def test_opening_the_link_alone_confirms_nothing(client, smtp, practice, clinician):
    # Mail scanners fetch links; only the button's POST may confirm.
    link, initial = await unconfirmed_patient(client, smtp, practice)
    for _ in range(3):
        assert (await client.get(link)).status == 200
    assert (await log_in(client, "erika", initial)).status == 401
    await confirm(client, link)
    assert (await log_in(client, "erika", initial)).status == 303


async def test_confirm_needs_the_csrf_token(client, smtp, practice, clinician):
    link, _ = await unconfirmed_patient(client, smtp, practice)
    await client.get(link)
    assert (await client.post(link, data={})).status == 403
    assert (await client.get(link)).status == 200


async def test_fresh_mail_replaces_the_old_link(client, smtp, practice, clinician):
    old_link, initial = await unconfirmed_patient(client, smtp, practice)
    answer = await resend_confirmation(client, "Erika@Example.org")
    assert answer.status == 200
    assert "we have sent it a new mail" in await answer.text()
    fresh = (await smtp.wait_for(2))[1]
    assert fresh["To"] == "erika@example.org"
    assert "Praxis am Markt has set up an account" in mail_text(fresh)
    new_link = mail_link(fresh)
    assert new_link != old_link
    await assert_refused(client, old_link, "A newer mail with a new link was sent since, which replaces this one.")
    await confirm(client, new_link)
    assert (await log_in(client, "erika", initial)).status == 303


async def test_fresh_mail_form_sent_twice_mails_once(client, smtp, practice, clinician):
    """A double click or a reload of "Send a new mail": one new link, the same page twice."""
    _, initial = await unconfirmed_patient(client, smtp, practice)
    english(client)
    token = await form_token(client, "/confirm")
    first = await resend_confirmation(client, "erika@example.org", token=token)
    again = await resend_confirmation(client, "erika@example.org", token=token)
    for answer in (first, again):
        assert answer.status == 200 and "we have sent it a new mail" in await answer.text()
    await mail_settled(client.app)
    assert len(smtp.to("erika@example.org")) == 2  # the first mail and one fresh one
    await confirm(client, mail_link(smtp.messages[1]))
    assert (await log_in(client, "erika", initial)).status == 303


async def test_fresh_mail_answers_the_same_for_unknown_and_confirmed_addresses(client, smtp, app, practice, clinician):
    await add_member(app, practice, "patient", "anna")
    english(client)
    pages = []
    for email in ("nobody@example.org", "anna@example.org"):
        response = await resend_confirmation(client, email)
        assert response.status == 200
        pages.append((await response.text()).replace(email, ""))
    strip = [page.split('name="csrf_token"')[0] for page in pages]
    assert strip[0] == strip[1]
    await mail_settled(client.app)
    assert smtp.messages == []


async def test_fresh_mail_is_limited_per_address(client, smtp, practice, clinician):
    await unconfirmed_patient(client, smtp, practice)
    for _ in range(5):
        response = await resend_confirmation(client, "erika@example.org")
        assert response.status == 200
        assert "we have sent it a new mail" in await response.text()
    await smtp.wait_for(4)
    await mail_settled(client.app)
    assert len(smtp.to("erika@example.org")) == 4  # the first mail and three fresh ones


async def test_fresh_mail_form_checks_the_address_format(client):
    english(client)
    response = await resend_confirmation(client, "not an address")
    assert response.status == 400
    page = await response.text()
    assert "Please enter a valid email address." in page
    assert 'value="not an address"' in page


async def test_staff_accounts_made_by_the_operator_stay_confirmed(client, app, practice):
    await add_member(app, practice, "clinician", "dr-neu")
    assert (await log_in(client, "dr-neu", PASSWORD)).status == 303
