"""TAN invitations: link and code by mail, single use, lock after wrong tries, guests kept apart."""

from __future__ import annotations

import re

from sqlalchemy import select

from smartpractice.storage.tables import invitations
from tests.helpers import (
    FORM_TOKEN,
    add_member,
    code_in,
    form_token,
    invite,
    log_in,
    mail_link,
    mail_text,
    post_form,
    reissue,
    tan_in,
)

EN = {"Accept-Language": "en"}
async def test_invitation_mail_link_and_tan_admit_the_guest_once(client, other_browser, services, smtp, practice, clinician):
    await log_in(client, "dr-berg")
    sent = await invite(client, practice)
    [view] = await services.invitations.list(practice.id)
    assert sent.status == 303 and sent.headers["Location"] == f"/p/{practice.slug}/invitations/{view.id}/sent"
    assert "Invitation sent" in await (await client.get(sent.headers["Location"], headers=EN)).text()
    [message] = await smtp.wait_for(1)
    assert message["To"] == "gast@example.org"
    link, tan = mail_link(message), tan_in(message)
    assert link.startswith("/invitation/") and code_in(message) == view.code
    form = await other_browser.get(link, headers=EN)
    assert "Log in with TAN" in await form.text()
    admitted = await post_form(other_browser, link, {"tan": tan.replace(" ", "")})
    # The invitation made an instant consultation: the guest lands in its waiting room.
    assert admitted.status == 303 and admitted.headers["Location"] == f"/c/{view.consultation_id}"
    landing = await (await other_browser.get(admitted.headers["Location"], headers=EN)).text()
    assert "Waiting room" in landing and "the practice knows you are here" in landing
    # The TAN works once: a second browser with the same link and TAN is turned away, and
    # offered a new code by mail instead.
    other_browser.cookie_jar.clear()
    again = await post_form(other_browser, link, {"tan": tan}, headers=EN)
    assert again.status == 401
    page = await again.text()
    assert "This TAN has already been used" in page and "Send a new code" in page


async def test_clinician_delivery_keeps_the_tan_out_of_the_mail(client, services, smtp, practice, clinician):
    await services.invitations.set_tan_delivery(practice.id, "clinician")
    await log_in(client, "dr-berg")
    sent = await invite(client, practice)
    page = await (await client.get(sent.headers["Location"])).text()
    shown = re.search(r'id="tan">(\d{4} \d{4})<', page).group(1)
    # Shown once: a reload of the page no longer holds it.
    assert shown not in await (await client.get(sent.headers["Location"])).text()
    [message] = await smtp.wait_for(1)
    assert shown not in mail_text(message) and not re.search(r"\d{4} \d{4}", mail_text(message))
    assert (await post_form(client, mail_link(message), {"tan": shown})).status == 303


async def test_five_wrong_tans_void_the_tan_and_reissue_gives_a_new_working_tan(client, other_browser, services, smtp, practice, clinician):
    await log_in(client, "dr-berg")
    await invite(client, practice)
    [first] = await smtp.wait_for(1)
    old_link, old_tan = mail_link(first), tan_in(first)
    for left in ("4 more tries are left", "3 more tries are left", "2 more tries are left", "1 more try is left"):
        wrong = await post_form(other_browser, old_link, {"tan": "0000 0000"}, headers=EN)
        assert left in await wrong.text()
    voided = await post_form(other_browser, old_link, {"tan": "0000 0000"}, headers=EN)
    assert voided.status == 401 and "this TAN no longer works" in await voided.text()
    assert (await post_form(other_browser, old_link, {"tan": old_tan})).status == 401

    [view] = await services.invitations.list(practice.id)
    assert view.state == "voided"
    listed = await (await client.get(f"/p/{practice.slug}/invitations", headers=EN)).text()
    assert "TAN voided after wrong tries" in listed
    await reissue(client, practice, view.id)
    second = (await smtp.wait_for(2))[1]
    new_link, new_tan = mail_link(second), tan_in(second)
    assert new_link != old_link and code_in(second) == code_in(first)
    replaced = await post_form(other_browser, old_link, {"tan": old_tan}, headers=EN)
    assert replaced.status == 410 and "newer invitation mail" in await replaced.text()
    old_on_new = await post_form(other_browser, new_link, {"tan": old_tan}, headers=EN)
    assert old_on_new.status == 401 and "replaced by a newer one" in await old_on_new.text()
    assert (await post_form(other_browser, new_link, {"tan": new_tan})).status == 303


async def test_reissue_is_refused_after_fifteen_wrong_tans_in_all(client, other_browser, services, smtp, practice, clinician):
    await log_in(client, "dr-berg")
    await invite(client, practice)
    [view] = await services.invitations.list(practice.id)
    for round_number in range(3):
        link = mail_link((await smtp.wait_for(round_number + 1))[round_number])
        for _ in range(5):
            await post_form(other_browser, link, {"tan": "0000 0000"})
        response = await reissue(client, practice, view.id, headers=EN)
    assert response.status == 409
    assert "Too many wrong TANs" in await response.text()


async def test_tan_of_another_invitation_does_not_open_this_one(client, other_browser, smtp, practice, clinician):
    await log_in(client, "dr-berg")
    await invite(client, practice, "a@example.org")
    await invite(client, practice, "b@example.org")
    messages = await smtp.wait_for(2)
    first, second = smtp.to("a@example.org")[0], smtp.to("b@example.org")[0]
    assert len(messages) == 2
    response = await post_form(other_browser, mail_link(first), {"tan": tan_in(second)})
    assert response.status == 401


async def test_expired_invitation_is_refused(client, other_browser, clock, settings, smtp, practice, clinician):
    await log_in(client, "dr-berg")
    await invite(client, practice)
    [message] = await smtp.wait_for(1)
    clock.advance(hours=settings.tan_hours, seconds=1)
    response = await post_form(other_browser, mail_link(message), {"tan": tan_in(message)}, headers=EN)
    assert response.status == 410 and "expired" in await response.text()


async def test_revoking_refuses_the_link_and_ends_the_guest_session(client, other_browser, services, smtp, practice, clinician):
    await log_in(client, "dr-berg")
    await invite(client, practice)
    [message] = await smtp.wait_for(1)
    await post_form(other_browser, mail_link(message), {"tan": tan_in(message)})
    [view] = await services.invitations.list(practice.id)
    room = f"/c/{view.consultation_id}"
    assert (await other_browser.get(room, allow_redirects=False)).status == 200
    assert (await post_form(client, f"/p/{practice.slug}/invitations/{view.id}/revoke", {})).status == 303
    # The session is gone; the way back is the invitation's TAN page, which says what happened.
    back = await other_browser.get(room, allow_redirects=False)
    assert back.status == 303 and back.headers["Location"] == "/guest/tan"
    withdrawn = await other_browser.get("/guest/tan", headers=EN)
    assert withdrawn.status == 410 and "Praxis am Markt has withdrawn this invitation." in await withdrawn.text()
    assert (await other_browser.get(mail_link(message))).status == 410


async def test_tampered_link_shows_a_clear_page(other_browser, client):
    response = await other_browser.get("/invitation/not-a-real-token", headers=EN)
    assert response.status == 410
    assert "This link is not valid" in await response.text()


async def test_guest_reaches_no_user_pages(client, other_browser, smtp, practice, clinician):
    await log_in(client, "dr-berg")
    await invite(client, practice)
    [message] = await smtp.wait_for(1)
    await post_form(other_browser, mail_link(message), {"tan": tan_in(message)})
    for path in ("/account", f"/p/{practice.slug}/", f"/p/{practice.slug}/invitations", f"/p/{practice.slug}/patients"):
        response = await other_browser.get(path, allow_redirects=False)
        assert response.status == 303 and response.headers["Location"].startswith("/login"), path


async def test_other_practices_and_patients_cannot_touch_invitations(client, services, app, smtp, practice, clinician):
    other = await services.practices.create("Praxis am See", admin_email="see@example.org", admin_username="see-admin")
    created = await services.invitations.invite(other.practice, email="x@example.org", invited_by=None)
    await log_in(client, "dr-berg")
    for action in ("revoke", "reissue"):
        response = await post_form(client, f"/p/{practice.slug}/invitations/{created.invitation.id}/{action}", {})
        assert response.status == 404
    assert (await services.invitations.get(other.practice.id, created.invitation.id)).state == "pending"
    await add_member(app, practice, "patient", "erika")
    client.session.cookie_jar.clear()
    await log_in(client, "erika")
    assert (await client.get(f"/p/{practice.slug}/invitations")).status == 404


async def test_only_admins_choose_where_the_tan_goes(client, services, practice, clinician):
    await log_in(client, "dr-berg")
    response = await post_form(client, f"/p/{practice.slug}/invitations/tan-delivery", {"tan_delivery": "clinician"})
    assert response.status == 404
    assert await services.invitations.tan_delivery(practice.id) == "mail"


async def test_bad_address_reshows_the_form(client, smtp, practice, clinician):
    await log_in(client, "dr-berg")
    token = await form_token(client, f"/p/{practice.slug}/invitations")
    response = await post_form(client, f"/p/{practice.slug}/invitations",
                               {"email": "not-an-address", "display_name": "Gabi", "form_token": token}, headers=EN)
    assert response.status == 400
    page = await response.text()
    assert "Please enter a valid email address." in page and 'value="Gabi"' in page
    # The form's token was not used up: the corrected form goes through with it.
    assert FORM_TOKEN.search(page).group(1) == token
    assert (await invite(client, practice, token=token)).status == 303


async def test_neither_tan_nor_link_is_stored_in_plain_text(client, engine, smtp, practice, clinician):
    await log_in(client, "dr-berg")
    await invite(client, practice)
    [message] = await smtp.wait_for(1)
    tan, link_token = tan_in(message), mail_link(message).rsplit("/", 1)[1]
    async with engine.connect() as conn:
        row = (await conn.execute(select(invitations))).one()
        dump = " ".join(str(value) for value in row)
        assert tan.replace(" ", "") not in dump and tan not in dump and link_token not in dump
