"""Admins invite staff by email, change roles, deactivate; seats and the last admin are guarded."""

from __future__ import annotations

import re

import pyotp
from sqlalchemy import func, select

from smartpractice.storage.staff import staff_of
from smartpractice.storage.tables import users
from tests.helpers import (
    FORM_TOKEN,
    add_member,
    create_api_key,
    form_token,
    invite_staff,
    log_in,
    mail_link,
    mail_settled,
    post_form,
)

NEW_PASSWORD = "Walnuss-Segelboot-Abendrot"


async def admin_of(client, practice) -> int:
    user_id = await add_member(client.app, practice, "admin", "praxis-admin")
    await log_in(client, "praxis-admin")
    return user_id


async def set_seats(services, practice, seats: int) -> None:
    await services.plans.set_by_operator(practice.id, kind="group", seats=seats, max_seats=None, actor=None)


async def test_invited_clinician_chooses_a_password_and_sets_up_an_app(client, other_browser, services, smtp, practice):
    await admin_of(client, practice)
    sent = await invite_staff(client, practice, "dr-lind@example.org", "clinician")
    assert sent.status == 303
    [mail] = await smtp.wait_for(1)
    assert mail["To"] == "dr-lind@example.org"
    link = mail_link(mail)
    form = await (await other_browser.get(link)).text()
    assert "Praxis am Markt" in form
    mismatch = await post_form(other_browser, link, {"display_name": "Dr. Lind", "username": "dr-lind",
                                                     "password": NEW_PASSWORD, "password_repeat": "other",
                                                     "form_token": FORM_TOKEN.search(form).group(1)})
    assert mismatch.status == 400 and 'value="dr-lind"' in await mismatch.text()
    joined = await post_form(other_browser, link, {"display_name": "Dr. Lind", "username": "dr-lind",
                                                   "password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD,
                                                   "form_token": FORM_TOKEN.search(await mismatch.text()).group(1)})
    assert joined.status == 303 and joined.headers["Location"] == "/account/two-factor/setup"
    page = await (await other_browser.get("/account/two-factor/setup")).text()
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    await post_form(other_browser, "/account/two-factor/setup", {"code": pyotp.TOTP(secret).at(services.clock.now())})
    dashboard = await other_browser.get(f"/p/{practice.slug}/")
    assert dashboard.status == 200 and "Dr. Lind" in await dashboard.text()
    again = await other_browser.get(link)
    assert again.status == 410 and "Dieser Link wurde bereits benutzt." in await again.text()


async def test_the_join_form_sent_twice_makes_one_account_and_leads_to_the_login(client, other_browser, services,
                                                                                 engine, smtp, practice):
    """A double click on "Join": the first sending made the account, but its answer (and
    session) was dropped by the browser. The second does not say "link already used": it
    leads to the login page, which says the account exists."""
    await admin_of(client, practice)
    await invite_staff(client, practice, "dr-lind@example.org", "admin")
    [mail] = await smtp.wait_for(1)
    link = mail_link(mail)
    token = FORM_TOKEN.search(await (await other_browser.get(link)).text()).group(1)
    newcomer = {"display_name": "Dr. Lind", "username": "dr-lind", "password": NEW_PASSWORD,
                "password_repeat": NEW_PASSWORD, "form_token": token}
    first = await post_form(other_browser, link, newcomer)
    assert first.status == 303 and first.headers["Location"] == "/account/two-factor/setup"
    other_browser.cookie_jar.clear()  # the first answer never reached the browser
    again = await post_form(other_browser, link, newcomer)
    assert again.status == 303 and again.headers["Location"] == "/login?joined=1"
    login = await (await other_browser.get("/login?joined=1")).text()
    assert "Ihr Zugang wurde angelegt." in login
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(users)
                                   .where(users.c.username == "dr-lind"))).scalar_one() == 1
    assert (await log_in(other_browser, "dr-lind", NEW_PASSWORD)).status == 303


async def test_the_staff_invite_form_sent_twice_makes_one_invitation_and_one_mail(client, services, smtp, practice):
    """A reload or a double click of "Invite": the form's one-time token lets the first
    sending through; the second leads to the same "sent" notice and sends nothing."""
    await admin_of(client, practice)
    token = await form_token(client, f"/p/{practice.slug}/staff")
    first = await invite_staff(client, practice, "dr-lind@example.org", token=token)
    again = await invite_staff(client, practice, "dr-lind@example.org", token=token)
    assert first.status == again.status == 303
    assert first.headers["Location"] == again.headers["Location"] == f"/p/{practice.slug}/staff?sent=1"
    await mail_settled(client.app)
    assert [m["To"] for m in smtp.messages] == ["dr-lind@example.org"]
    assert [invitation.email for invitation in await services.staff_invitations.list(practice.id)] == ["dr-lind@example.org"]
    # A fresh page carries a fresh token: inviting someone else still works.
    assert (await invite_staff(client, practice, "verwaltung@example.org", "admin")).status == 303
    assert len(await services.staff_invitations.list(practice.id)) == 2


async def test_seat_limit_is_refused_at_the_boundary(client, services, app, practice):
    await admin_of(client, practice)
    await set_seats(services, practice, 2)
    await add_member(app, practice, "clinician", "dr-eins")
    second = await invite_staff(client, practice, "zwei@example.org", "clinician")
    assert second.status == 303  # the second seat is free
    third = await invite_staff(client, practice, "drei@example.org", "clinician", headers={"Accept-Language": "en"})
    page = await third.text()
    assert third.status == 400
    assert "All 2 clinician seats of your plan are taken" in page and "Plan and seats" in page
    # Admins never take a seat.
    assert (await invite_staff(client, practice, "vier@example.org", "admin")).status == 303


async def test_reactivating_beyond_the_seats_is_refused(client, services, app, practice):
    await admin_of(client, practice)
    await set_seats(services, practice, 1)
    first = await add_member(app, practice, "clinician", "dr-eins")
    await post_form(client, f"/p/{practice.slug}/staff/{first}/deactivate", {})
    await add_member(app, practice, "clinician", "dr-zwei")
    refused = await post_form(client, f"/p/{practice.slug}/staff/{first}/reactivate", {})
    assert refused.status == 400
    await post_form(client, f"/p/{practice.slug}/plan", {"seats": "2"})
    assert (await post_form(client, f"/p/{practice.slug}/staff/{first}/reactivate", {})).status == 303


async def test_an_admin_who_treats_patients_takes_a_seat_and_gives_it_back(client, services, app, practice):
    admin = await admin_of(client, practice)
    await set_seats(services, practice, 1)
    slug = practice.slug
    page = await (await client.get(f"/p/{slug}/staff")).text()
    assert '<option value="admin" selected>' in page.replace("  ", " ")
    assert (await post_form(client, f"/p/{slug}/staff/{admin}/role", {"role": "admin_clinician"})).status == 303
    assert (await services.plans.usage(practice.id)).used == 1
    page = await (await client.get(f"/p/{slug}/")).text()
    assert f'href="/p/{slug}/consultations/new"' in page and 'id="waiting-room"' in page
    # The seat is the admin's now: a clinician, or another admin who treats patients, waits for one.
    doctor = await add_member(app, practice, "admin", "dr-zwei")
    refused = await post_form(client, f"/p/{slug}/staff/{doctor}/role", {"role": "admin_clinician"},
                              headers={"Accept-Language": "en"})
    assert refused.status == 400 and "seat of your plan is taken" in await refused.text()
    # Back to administering only: the seat is free, and the clinician pages are gone.
    assert (await post_form(client, f"/p/{slug}/staff/{admin}/role", {"role": "admin"})).status == 303
    assert (await services.plans.usage(practice.id)).used == 0
    assert (await client.get(f"/p/{slug}/consultations/new")).status == 404
    assert (await post_form(client, f"/p/{slug}/staff/{doctor}/role", {"role": "admin_clinician"})).status == 303
    assert (await post_form(client, f"/p/{slug}/staff/{doctor}/role", {"role": "chief"})).status == 400


async def test_deactivated_member_reaches_nothing_of_the_practice(client, other_browser, services, practice, clinician):
    await admin_of(client, practice)
    await log_in(other_browser, "dr-berg")
    assert (await other_browser.get(f"/p/{practice.slug}/")).status == 200
    await post_form(client, f"/p/{practice.slug}/staff/{clinician.user_id}/deactivate", {})
    assert (await other_browser.get(f"/p/{practice.slug}/", allow_redirects=False)).status == 404


async def test_the_last_admin_cannot_remove_themselves(client, engine, practice):
    created_admin = await admin_of(client, practice)
    async with engine.connect() as conn:
        chef = next(m for m in await staff_of(conn, practice.id) if m.username == "chef")
    # Two admins: one may go.
    assert (await post_form(client, f"/p/{practice.slug}/staff/{chef.user_id}/deactivate", {})).status == 303
    for path, data in ((f"/p/{practice.slug}/staff/{created_admin}/deactivate", {}),
                       (f"/p/{practice.slug}/staff/{created_admin}/role", {"role": "clinician"})):
        refused = await post_form(client, path, data, headers={"Accept-Language": "en"})
        assert refused.status == 400
        assert "at least one active admin" in await refused.text()
    assert (await client.get(f"/p/{practice.slug}/staff")).status == 200


async def test_clinicians_do_not_see_the_administration(client, practice, clinician):
    await log_in(client, "dr-berg")
    for path in ("staff", "settings", "plan", "api-keys", "audit", "audit.csv"):
        assert (await client.get(f"/p/{practice.slug}/{path}")).status == 404, path


async def test_settings_are_saved_and_bad_values_reshown(client, services, practice):
    await admin_of(client, practice)
    form = {"name": "Praxis am Markt", "contact": "030 1234", "address": "Markt 1, Berlin",
            "time_zone": "Europe/Berlin", "consultation_minutes": "20", "join_window_minutes": "5",
            "max_participants": "3", "tan_delivery": "clinician", "relay_policy": "relay",
            "e2ee_policy": "allow_transport", "self_registration": "on", "retention_days": "30"}
    saved = await post_form(client, f"/p/{practice.slug}/settings", form)
    assert saved.status == 303
    stored = await services.practice_configuration.get(practice.id)
    assert (stored.consultation_minutes, stored.relay_policy, stored.retention_days) == (20, "relay", 30)
    assert stored.e2ee_policy == "allow_transport"
    refused = await post_form(client, f"/p/{practice.slug}/settings", {**form, "e2ee_policy": "none"})
    assert refused.status == 400
    assert (await services.practice_configuration.get(practice.id)).e2ee_policy == "allow_transport"
    bad = await post_form(client, f"/p/{practice.slug}/settings", {**form, "retention_days": "365", "contact": "neu"},
                          headers={"Accept-Language": "en"})
    page = await bad.text()
    assert bad.status == 400 and "between 1 and 90 days" in page and 'value="neu"' in page


async def test_the_api_key_form_sent_twice_makes_one_key(client, services, practice):
    """A reload or a double click of "Create key": one key, shown in the first answer; the
    second leads to the list with a notice, never to an error page or a second key."""
    await admin_of(client, practice)
    token = await form_token(client, f"/p/{practice.slug}/api-keys")
    first = await create_api_key(client, practice, "Praxis-EDV", token=token)
    key = re.search(r'id="new-key">(spk_[^<]+)<', await first.text()).group(1)
    again = await create_api_key(client, practice, "Praxis-EDV", token=token)
    assert again.status == 303 and again.headers["Location"] == f"/p/{practice.slug}/api-keys?already=1"
    notice = await (await client.get(again.headers["Location"], headers={"Accept-Language": "de"})).text()
    assert "Dieser Schlüssel wurde schon beim ersten Absenden des Formulars erstellt" in notice and key not in notice
    assert [stored.name for stored in await services.api_keys.list(practice.id)] == ["Praxis-EDV"]


async def test_api_keys_are_shown_once_and_revocable(client, services, practice):
    await admin_of(client, practice)
    created = await create_api_key(client, practice, "Praxis-EDV")
    key = re.search(r'id="new-key">(spk_[^<]+)<', await created.text()).group(1)
    assert await services.api_keys.authenticate(key) is not None
    listing = await (await client.get(f"/p/{practice.slug}/api-keys")).text()
    assert key not in listing and key[:12] in listing
    [stored] = await services.api_keys.list(practice.id)
    assert (await post_form(client, f"/p/{practice.slug}/api-keys/{stored.id}/revoke", {})).status == 303
    assert await services.api_keys.authenticate(key) is None
    assert (await create_api_key(client, practice, "")).status == 400

