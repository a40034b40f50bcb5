"""The operator: created by the CLI, sees every practice, sets plans, suspends and reactivates."""

from __future__ import annotations

import re

import pyotp

from tests.helpers import PASSWORD, add_member, invoke, log_in, post_form


async def operator_logged_in(client, services) -> None:
    """The operator's first login: own password, then the authenticator app."""
    created = await services.operator.create(email="op@example.org", username="operator")
    await log_in(client, "operator", created.password)
    await post_form(client, "/account/password", {
        "current_password": created.password, "new_password": "Leuchtfeuer-Hafenkran-Dünung",
        "new_password_repeat": "Leuchtfeuer-Hafenkran-Dünung",
    })
    page = await (await client.get("/account/two-factor/setup")).text()
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    await post_form(client, "/account/two-factor/setup", {"code": pyotp.TOTP(secret).at(services.clock.now())})


async def test_cli_creates_an_operator_who_must_set_up_two_factors(client, cli_env):
    result = await invoke(["create-operator", "--email", "op@example.org", "--username", "operator"], cli_env)
    assert result.exit_code == 0, result.output
    password = re.search(r"Initial password: (\S+)", result.output).group(1)
    assert (await log_in(client, "operator", password)).status == 303
    assert (await client.get("/", allow_redirects=False)).headers["Location"] == "/account/password"


async def test_operator_sees_practices_and_sets_a_plan(client, services, practice):
    await operator_logged_in(client, services)
    assert (await client.get("/", allow_redirects=False)).headers["Location"] == "/operator"
    page = await (await client.get("/operator")).text()
    assert "Praxis am Markt" in page
    saved = await post_form(client, f"/operator/practices/{practice.id}/plan", {"kind": "mvz", "seats": "12", "max_seats": "20"})
    assert saved.status == 303
    usage = await services.plans.usage(practice.id)
    assert (usage.kind, usage.seats, usage.max_seats) == ("mvz", 12, 20)
    bad = await post_form(client, f"/operator/practices/{practice.id}/plan", {"kind": "spa", "seats": "1", "max_seats": ""})
    assert bad.status == 400
    assert (await post_form(client, "/operator/practices/999999/suspend", {})).status == 404


async def test_a_suspended_practice_is_locked_out(client, other_browser, services, app, practice, clinician):
    await add_member(app, practice, "patient", "erika")
    await log_in(other_browser, "dr-berg")
    await operator_logged_in(client, services)
    assert (await post_form(client, f"/operator/practices/{practice.id}/suspend", {})).status == 303
    # The clinician's session ended, and a new login is refused with the reason.
    assert (await other_browser.get(f"/p/{practice.slug}/", allow_redirects=False)).status == 303
    refused = await post_form(other_browser, "/login", {"identifier": "dr-berg", "password": PASSWORD},
                              headers={"Accept-Language": "en"})
    assert refused.status == 401 and "suspended" in await refused.text()
    # Patients may log in and are told clearly.
    other_browser.cookie_jar.clear()
    await log_in(other_browser, "erika")
    notice = await other_browser.get(f"/p/{practice.slug}/", headers={"Accept-Language": "en"})
    assert notice.status == 403 and "suspended" in await notice.text()
    key = await services.api_keys.create(practice, "EDV")
    assert await services.api_keys.authenticate(key.key) is None
    await post_form(client, f"/operator/practices/{practice.id}/reactivate", {})
    other_browser.cookie_jar.clear()
    assert (await log_in(other_browser, "dr-berg")).status == 303


async def test_the_operator_pages_are_hidden_from_everyone_else(client, app, practice):
    await add_member(app, practice, "admin", "praxis-admin")
    await log_in(client, "praxis-admin")
    for path in ("/operator", "/operator/audit", "/operator/audit.csv"):
        assert (await client.get(path)).status == 404
    assert (await post_form(client, f"/operator/practices/{practice.id}/suspend", {})).status == 404
