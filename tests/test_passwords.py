"""Password policy (ASVS 6.2) and the forced change of an initial password."""

from __future__ import annotations

import re
from pathlib import Path

import argon2
import pytest

from smartpractice.accounts.passwords import PasswordRejected, check_password, generate_password
from smartpractice.app import create_app
from smartpractice.keys import services_key
from tests.helpers import PASSWORD, log_in, mail_settled, mail_text, post_form

SECURITY = Path(__file__).resolve().parents[1] / "docs" / "security.md"


async def test_the_server_hashes_with_the_documented_parameters(aiohttp_client, settings, clock):
    # The one app in the tests with the production cost; all others hash cheaply.
    documented = re.search(
        r"t=(\d+) iterations, (\d+) MiB memory, p=(\d+) lanes, (\d+)-byte salt, (\d+)-byte hash",
        SECURITY.read_text().replace("\n  ", " "),
    )
    assert documented, "docs/security.md no longer names the hashing parameters"
    time_cost, mebibytes, lanes, salt_bytes, hash_bytes = map(int, documented.groups())
    passwords = (await aiohttp_client(create_app(settings, clock=clock))).app[services_key].passwords

    stored = await passwords.hash(PASSWORD)
    assert stored.startswith(f"$argon2id$v=19$m={mebibytes * 1024},t={time_cost},p={lanes}$")
    assert argon2.extract_parameters(stored) == argon2.Parameters(
        type=argon2.Type.ID, version=19, salt_len=salt_bytes, hash_len=hash_bytes,
        time_cost=time_cost, memory_cost=mebibytes * 1024, parallelism=lanes,
    )
    assert await passwords.verify(stored, PASSWORD)
    assert not await passwords.verify(stored, "amber-violin-harbour-78")
    assert not passwords.needs_rehash(stored)
    # Unknown users are answered after verifying against a hash of the same cost.
    assert await passwords.verify_dummy(PASSWORD) is False


@pytest.mark.parametrize(
    ("password", "staff", "code"),
    [
        ("short-one", False, "password_too_short"),
        ("eleven-char", True, "password_too_short"),
        ("x" * 257, False, "password_too_long"),
        ("passwort123456", False, "password_too_common"),
        ("qwertzuiop1234", False, "password_too_common"),
        ("mueller-secret-tulip", False, "password_contains_context"),
        ("praxisammarkt-2024", True, "password_contains_context"),
    ],
)
def test_weak_passwords_are_refused_with_a_reason(password, staff, code):
    with pytest.raises(PasswordRejected) as refused:
        check_password(password, staff=staff, context=("mueller", "mueller@example.org", "Praxis am Markt"))
    assert refused.value.code == code


@pytest.mark.parametrize("password", ["amber violin harbour", "Zebra-Kompass-Nebel", "ä" * 3 + "-stille-brücke-9", "x" * 60 + "Q7!b" + "y" * 64])
def test_strong_passwords_pass_without_composition_rules(password):
    check_password(password, staff=True, context=("mueller",))


def test_generated_passwords_pass_the_staff_policy():
    for _ in range(20):
        check_password(generate_password(), staff=True)


async def test_initial_password_leads_straight_to_choosing_a_new_one(client, services, practice):
    created = await services.practices.create("Praxis Zwei", admin_email="zwei@example.org", admin_username="zwei-admin")
    response = await log_in(client, "zwei-admin", created.admin_password)
    assert response.status == 303
    for path in ("/", f"/p/{created.practice.slug}/", "/account"):
        blocked = await client.get(path, allow_redirects=False)
        assert blocked.status == 303 and blocked.headers["Location"] == "/account/password"
    form = await client.get("/account/password")
    assert "Eigenes Passwort wählen" in await form.text()
    changed = await post_form(client, "/account/password", {
        "current_password": created.admin_password,
        "new_password": "Kastanie-Leuchtturm-Morgen",
        "new_password_repeat": "Kastanie-Leuchtturm-Morgen",
    })
    assert changed.status == 303
    assert (await client.get(f"/p/{created.practice.slug}/")).status == 200


async def test_refused_new_password_reshows_the_form_with_the_reason(client, clinician):
    await log_in(client, "dr-berg")
    response = await post_form(client, "/account/password", {
        "current_password": clinician.password,
        "new_password": "short",
        "new_password_repeat": "short",
    })
    assert response.status == 400
    # German by default.
    assert "mindestens 12 Zeichen" in await response.text()


async def test_wrong_current_password_is_refused(client, clinician):
    await log_in(client, "dr-berg")
    response = await post_form(client, "/account/password", {
        "current_password": "not-my-password",
        "new_password": "Kastanie-Leuchtturm-Morgen",
        "new_password_repeat": "Kastanie-Leuchtturm-Morgen",
    })
    assert response.status == 400
    assert "Ihr aktuelles Passwort ist nicht richtig." in await response.text()


async def test_mismatched_repeat_is_refused(client, clinician):
    await log_in(client, "dr-berg")
    response = await post_form(client, "/account/password", {
        "current_password": clinician.password,
        "new_password": "Kastanie-Leuchtturm-Morgen",
        "new_password_repeat": "Kastanie-Leuchtturm-Abend",
    })
    assert response.status == 400


async def test_owner_is_told_by_mail_of_a_password_change(client, smtp, clinician):
    await log_in(client, "dr-berg")
    await post_form(client, "/account/password", {
        "current_password": clinician.password,
        "new_password": "Kastanie-Leuchtturm-Morgen",
        "new_password_repeat": "Kastanie-Leuchtturm-Morgen",
    })
    [message] = await smtp.wait_for(1)
    assert message["To"] == "dr-berg@example.org"
    assert "/password-reset" in mail_text(message)


async def test_replacing_the_initial_password_sends_no_alarm(client, services, smtp, practice):
    created = await services.practices.create("Praxis Zwei", admin_email="zwei@example.org", admin_username="zwei-admin")
    await log_in(client, "zwei-admin", created.admin_password)
    changed = await post_form(client, "/account/password", {
        "current_password": created.admin_password,
        "new_password": "Kastanie-Leuchtturm-Morgen",
        "new_password_repeat": "Kastanie-Leuchtturm-Morgen",
    })
    assert changed.status == 303
    await mail_settled(client.app)
    assert smtp.messages == []
