"""Staff log in with two factors: password, then a TOTP code or a single-use recovery code."""

from __future__ import annotations

import re

import pyotp
from sqlalchemy import select

from smartpractice.storage.second_factors import factor_of
from smartpractice.storage.tables import audit_log, recovery_codes
from tests.helpers import (
    PASSWORD,
    add_member,
    enrol_second_factor,
    log_in,
    mail_text,
    post_form,
    totp_code,
)


async def password_only(client, identifier: str = "dr-berg"):
    return await post_form(client, "/login", {"identifier": identifier, "password": PASSWORD})


async def test_password_alone_reaches_nothing_but_the_code_form(client, practice, clinician):
    response = await password_only(client)
    assert response.status == 303 and response.headers["Location"] == "/login/second-factor"
    for path in ("/", f"/p/{practice.slug}/", f"/p/{practice.slug}/patients", "/account"):
        blocked = await client.get(path, allow_redirects=False)
        assert blocked.status == 303 and blocked.headers["Location"] == "/login/second-factor", path
    assert "Code" in await (await client.get("/login/second-factor")).text()


async def test_wrong_code_is_refused_and_the_form_reshown(client, practice, clinician):
    await password_only(client)
    refused = await post_form(client, "/login/second-factor", {"code": "000000"}, headers={"Accept-Language": "en"})
    assert refused.status == 401
    assert "This code is not correct" in await refused.text()
    assert (await client.get(f"/p/{practice.slug}/", allow_redirects=False)).status == 303


async def test_codes_outside_the_time_window_are_refused(client, app, engine, clock, practice):
    user_id = await add_member(app, practice, "clinician", "dr-zeit")
    async with engine.connect() as conn:
        secret = (await factor_of(conn, user_id)).secret
    totp = pyotp.TOTP(secret)
    await password_only(client, "dr-zeit")
    for offset in (-90, 90):  # three steps away: older or newer than the one-step tolerance
        code = totp.at(clock.now().timestamp() + offset)
        assert (await post_form(client, "/login/second-factor", {"code": code})).status == 401
    accepted = await post_form(client, "/login/second-factor", {"code": totp.at(clock.now().timestamp() + 30)})
    assert accepted.status == 303 and accepted.headers["Location"] == "/"


async def test_a_code_works_once(client, other_browser, app, practice, clinician):
    code = await totp_code(app, "dr-berg")
    await password_only(client)
    assert (await post_form(client, "/login/second-factor", {"code": code})).status == 303
    await password_only(other_browser)
    assert (await post_form(other_browser, "/login/second-factor", {"code": code})).status == 401


async def test_first_login_enrols_an_app_and_gives_recovery_codes_once(client, services, app, engine, smtp, practice):
    user_id = await add_member(app, practice, "clinician", "dr-neu", second_factor=False)
    response = await password_only(client, "dr-neu")
    assert response.headers["Location"] == "/"
    assert (await client.get("/", allow_redirects=False)).headers["Location"] == "/account/two-factor/setup"
    page = await (await client.get("/account/two-factor/setup")).text()
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    assert 'src="data:image/svg+xml' in page
    wrong = await post_form(client, "/account/two-factor/setup", {"code": "123456"})
    assert wrong.status == 400
    done = await post_form(client, "/account/two-factor/setup", {"code": pyotp.TOTP(secret).at(services.clock.now())})
    codes = re.findall(r"<code>([a-z0-9]{5}-[a-z0-9]{5})</code>", await done.text())
    assert done.status == 200 and len(set(codes)) == 10
    assert (await client.get(f"/p/{practice.slug}/")).status == 200
    async with engine.connect() as conn:
        stored = [row.code_hmac for row in await conn.execute(select(recovery_codes))]
        actions = [row.action for row in await conn.execute(select(audit_log))]
        factor = await factor_of(conn, user_id)
    assert len(stored) == 10 and not set(codes) & set(stored)
    assert "second_factor_enrolled" in actions and "login" in actions
    assert factor.secret == secret
    [mail] = await smtp.wait_for(1)
    assert "authenticator app was set up" in mail_text(mail) or "Authenticator-App" in mail_text(mail)


async def test_a_recovery_code_works_once(client, other_browser, services, practice, clinician):
    enrolment = await services.second_factors.begin(await services.users.by_login("dr-berg"))
    code_now = pyotp.TOTP(enrolment.secret).at(services.clock.now())
    recovery = await services.second_factors.confirm(await services.users.by_login("dr-berg"), code_now, address="test")
    await password_only(client)
    first = await post_form(client, "/login/second-factor", {"code": recovery[0].upper()})
    assert first.status == 303
    await password_only(other_browser)
    again = await post_form(other_browser, "/login/second-factor", {"code": recovery[0]})
    assert again.status == 401
    assert (await post_form(other_browser, "/login/second-factor", {"code": recovery[1]})).status == 303


async def test_five_wrong_codes_lock_the_second_step(client, practice, clinician):
    await password_only(client)
    for _ in range(5):
        await post_form(client, "/login/second-factor", {"code": "000000"})
    code = await totp_code(client.app, "dr-berg")
    locked = await post_form(client, "/login/second-factor", {"code": code}, headers={"Accept-Language": "en"})
    assert locked.status == 401 and "Too many wrong codes" in await locked.text()


async def test_re_enrolment_needs_password_and_a_current_code(client, app, practice, clinician):
    await log_in(client, "dr-berg")
    no_code = await post_form(client, "/account/two-factor", {"current_password": PASSWORD, "code": ""})
    assert no_code.status == 400
    wrong_password = await post_form(
        client, "/account/two-factor", {"current_password": "wrong-password-1", "code": await totp_code(app, "dr-berg")}
    )
    assert wrong_password.status == 400
    ok = await post_form(client, "/account/two-factor", {"current_password": PASSWORD, "code": await totp_code(app, "dr-berg")})
    assert ok.status == 303 and ok.headers["Location"] == "/account/two-factor/setup"


async def test_a_patient_may_enable_the_second_factor(client, services, app, practice):
    await add_member(app, practice, "patient", "erika")
    assert (await log_in(client, "erika")).headers["Location"] == "/"
    started = await post_form(client, "/account/two-factor", {"current_password": PASSWORD})
    assert started.headers["Location"] == "/account/two-factor/setup"
    page = await (await client.get("/account/two-factor/setup")).text()
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    await post_form(client, "/account/two-factor/setup", {"code": pyotp.TOTP(secret).at(services.clock.now())})
    client.session.cookie_jar.clear()
    assert (await password_only(client, "erika")).headers["Location"] == "/login/second-factor"


async def test_staff_added_by_the_test_helper_have_a_factor(services, app, practice):
    user_id = await add_member(app, practice, "admin", "praxis-admin")
    assert await services.second_factors.is_enrolled(user_id)
    assert await enrol_second_factor(app, user_id)



