"""Login: success, the bad cases, and rate limits that survive a restart."""

from __future__ import annotations

import asyncio
import statistics
import time

import argon2
import pytest
from sqlalchemy import select, update

from smartpractice.accounts.passwords import Passwords
from smartpractice.storage.tables import users
from tests.helpers import (
    PASSWORD,
    add_member,
    csrf_token,
    log_in,
    make_app,
    make_settings,
    post_form,
    second_browser,
)

WRONG = "The user name, email address or password is wrong."


async def english(client):
    client.session.headers["Accept-Language"] = "en"


async def test_login_with_username_lands_on_the_practice_dashboard(client, practice, clinician):
    response = await log_in(client, "dr-berg")
    assert response.status == 303
    assert response.headers["Location"] == "/"
    home = await client.get("/", allow_redirects=False)
    assert home.headers["Location"] == f"/p/{practice.slug}/"
    dashboard = await client.get(home.headers["Location"])
    assert "Praxis am Markt" in await dashboard.text()


async def test_login_with_email_in_any_case(client, clinician):
    response = await log_in(client, "DR-BERG@Example.org")
    assert response.status == 303


async def test_wrong_password_and_unknown_user_get_the_same_answer(client, clinician):
    await english(client)
    wrong = await log_in(client, "dr-berg", "not-the-password-at-all")
    unknown = await log_in(client, "nobody-here", "not-the-password-at-all")
    assert wrong.status == unknown.status == 401
    wrong_page, unknown_page = await wrong.text(), await unknown.text()
    assert WRONG in wrong_page and WRONG in unknown_page
    # The form keeps what was typed, except the password.
    assert 'value="dr-berg"' in wrong_page
    assert "not-the-password-at-all" not in wrong_page


# A hash that takes far longer than the rest of a request (about 0.1 s), so that a login
# without one would stand out; the tests' usual hash takes microseconds.
@pytest.mark.parametrize("passwords", [
    Passwords(concurrency=2, hasher=argon2.PasswordHasher(time_cost=2, memory_cost=32 * 1024, parallelism=1)),
], ids=["measurable hash"])
async def test_unknown_user_takes_as_long_as_a_wrong_password(client, clinician):
    async def timed(identifier: str) -> float:
        started = time.perf_counter()
        await log_in(client, identifier, "not-the-password-at-all")
        return time.perf_counter() - started

    known = [await timed("dr-berg") for _ in range(2)]
    unknown = [await timed("nobody-here") for _ in range(2)]
    ratio = statistics.median(unknown) / statistics.median(known)
    # Both verify one argon2 hash; without the dummy hash the unknown case is ~50x faster.
    assert 0.4 < ratio < 2.5, (known, unknown)


async def test_account_locks_after_five_failures_even_for_the_right_password(client, clinician):
    await english(client)
    for _ in range(5):
        assert (await log_in(client, "dr-berg", "wrong-password-123")).status == 401
    locked = await log_in(client, "dr-berg", PASSWORD)
    assert locked.status == 401
    assert "Too many failed attempts. Please try again in 15 minutes." in await locked.text()


async def test_lock_ends_after_fifteen_minutes(client, clock, clinician):
    for _ in range(5):
        await log_in(client, "dr-berg", "wrong-password-123")
    clock.advance(minutes=15, seconds=1)
    assert (await log_in(client, "dr-berg")).status == 303


async def test_unknown_names_lock_the_same_way(client):
    await english(client)
    for _ in range(5):
        await log_in(client, "ghost", "wrong-password-123")
    locked = await log_in(client, "ghost", "wrong-password-123")
    assert "Too many failed attempts" in await locked.text()


async def test_lock_survives_a_restart(aiohttp_client, client, settings, clock, clinician):
    for _ in range(5):
        await log_in(client, "dr-berg", "wrong-password-123")
    await client.close()
    restarted = await aiohttp_client(make_app(settings, clock=clock))
    assert (await log_in(restarted, "dr-berg")).status == 401


async def test_one_address_is_limited_across_accounts(client, clinician):
    # 30 failures from one address spread over many names: then even a right password waits.
    for number in range(30):
        await log_in(client, f"someone-{number}", "wrong-password-123")
    assert (await log_in(client, "dr-berg")).status == 401


async def test_success_clears_the_account_counter(client, clinician):
    for _ in range(4):
        await log_in(client, "dr-berg", "wrong-password-123")
    assert (await log_in(client, "dr-berg")).status == 303
    client.session.cookie_jar.clear()
    for _ in range(4):
        await log_in(client, "dr-berg", "wrong-password-123")
    assert (await log_in(client, "dr-berg")).status == 303


async def test_hash_is_upgraded_when_parameters_change(client, services, engine, clinician):
    # Other parameters than the app's (the tests' cheap ones, see helpers.cheap_passwords).
    older = argon2.PasswordHasher(time_cost=2, memory_cost=16, parallelism=1).hash(PASSWORD)
    assert services.passwords.needs_rehash(older)
    async with engine.begin() as conn:
        await conn.execute(update(users).where(users.c.id == clinician.user_id).values(password_hash=older))
    assert (await log_in(client, "dr-berg")).status == 303
    async with engine.connect() as conn:
        stored = (await conn.execute(select(users.c.password_hash).where(users.c.id == clinician.user_id))).scalar()
    assert stored != older
    assert not services.passwords.needs_rehash(stored)
    assert await services.passwords.verify(stored, PASSWORD)


async def test_unused_initial_password_expires(client, clock, services, practice):
    created = await services.practices.create("Praxis Zwei", admin_email="zwei@example.org", admin_username="zwei-admin")
    clock.advance(days=15)
    await english(client)
    response = await log_in(client, "zwei-admin", created.admin_password)
    assert response.status == 401
    assert "Your initial password has expired" in await response.text()


async def test_overlong_password_is_refused_without_error(client, clinician):
    response = await log_in(client, "dr-berg", "x" * 4000)
    assert response.status == 401


async def test_missing_fields_are_a_failed_login_not_an_error(client):
    token = await csrf_token(client)
    response = await client.post("/login", data={"csrf_token": token})
    assert response.status == 401


async def test_parallel_wrong_passwords_cannot_outrun_the_lock(client, clinician):
    await english(client)
    token = await csrf_token(client)

    async def attempt():
        response = await client.post("/login", data={"identifier": "dr-berg", "password": "wrong-password-123", "csrf_token": token})
        return await response.text()

    pages = await asyncio.gather(*(attempt() for _ in range(20)))
    checked = [page for page in pages if WRONG in page]
    assert len(checked) <= 5
    assert sum("Too many failed attempts" in page for page in pages) >= 15


async def test_right_password_of_an_unconfirmed_account_never_locks_it(client, services, engine, practice):
    async with engine.begin() as conn:
        await services.users.create_with_initial_password(
            conn, username="neu", email="neu@example.org", display_name="Neu", password=PASSWORD, staff=False,
            email_confirmed=False,
        )
    await english(client)
    for _ in range(7):
        page = await (await log_in(client, "neu", PASSWORD)).text()
        assert "Please confirm your email address first" in page


async def test_behind_a_proxy_range_each_forwarded_client_has_its_own_limit(aiohttp_client, tmp_path, database_url,
                                                                         clock, app, practice):
    await add_member(app, practice, "clinician", "dr-weiss")
    # The test client connects from 127.0.0.1: a proxy inside the trusted range.
    settings = make_settings(tmp_path, database_url, TRUSTED_PROXIES="10.0.0.0/8,127.0.0.0/8")
    behind = await aiohttp_client(make_app(settings, clock=clock))
    attacker = {"X-Forwarded-For": "198.51.100.7, 10.0.3.4"}
    for number in range(30):
        await post_form(behind, "/login", {"identifier": f"someone-{number}", "password": "wrong-password-123"},
                        headers=attacker)
    refused = await post_form(behind, "/login", {"identifier": "dr-weiss", "password": PASSWORD}, headers=attacker)
    assert refused.status == 401
    # Another client behind the same proxies is not held up by the first one's failures.
    other = await post_form(behind, "/login", {"identifier": "dr-weiss", "password": PASSWORD},
                            headers={"X-Forwarded-For": "203.0.113.9, 10.200.0.1"})
    assert other.status == 303


async def test_a_stranger_cannot_lock_the_owner_out_of_her_own_browser(aiohttp_client, tmp_path, database_url,
                                                                       clock, app, practice):
    """OWASP's device cookies: the patient's own phone has logged in before; a stranger
    elsewhere who tries six passwords for her user name just before her appointment locks
    out browsers the account does not know, not her phone."""
    await add_member(app, practice, "patient", "erika")
    settings = make_settings(tmp_path, database_url, TRUSTED_PROXIES="127.0.0.0/8")
    behind = await aiohttp_client(make_app(settings, clock=clock))
    owner, stranger = {"X-Forwarded-For": "203.0.113.9"}, {"X-Forwarded-For": "198.51.100.7"}
    first = await post_form(behind, "/login", {"identifier": "erika", "password": PASSWORD}, headers=owner)
    assert first.status == 303 and "sp_device" in first.cookies
    await post_form(behind, "/logout", {}, headers=owner)

    async with second_browser(behind) as attacker:
        for _ in range(6):
            await post_form(attacker, "/login", {"identifier": "erika", "password": "wrong-password-123"},
                            headers=stranger)
        refused = await post_form(attacker, "/login", {"identifier": "erika", "password": PASSWORD}, headers=stranger)
        assert refused.status == 401 and "Zu viele fehlgeschlagene Versuche" in await refused.text()
    # Her phone, which logged in before, gets in at once.
    again = await post_form(behind, "/login", {"identifier": "erika", "password": PASSWORD}, headers=owner)
    assert again.status == 303 and again.headers["Location"] == "/"
    # A browser she never used is held like the stranger's (for the lock's 15 minutes).
    async with second_browser(behind) as new_phone:
        held = await post_form(new_phone, "/login", {"identifier": "erika", "password": PASSWORD}, headers=owner)
        assert held.status == 401
    # Her own browser's wrong passwords still count, against that browser.
    await post_form(behind, "/logout", {}, headers=owner)
    for _ in range(6):
        await post_form(behind, "/login", {"identifier": "erika", "password": "wrong-password-123"}, headers=owner)
    assert (await post_form(behind, "/login", {"identifier": "erika", "password": PASSWORD}, headers=owner)).status == 401
