"""Login: success, the bad cases, and rate limits that survive a restart."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import timedelta

import argon2
import pytest
from sqlalchemy import select, update

from smartpractice.accounts.passwords import Passwords
from smartpractice.accounts.throttle import ACCOUNT_BACKOFF, PAIR_BACKOFF
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


def told_to_wait(page: str) -> timedelta | None:
    """The wait a refused login states, in German or English; None if it states none."""
    seconds = re.search(r"(?:wait|warten Sie) (\d+) (?:second|Sekunde)", page)
    if seconds:
        return timedelta(seconds=int(seconds[1]))
    minutes = re.search(r"(?:try again in|es in) (\d+) (?:minute|Minute)", page)
    return timedelta(minutes=int(minutes[1])) if minutes else None


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

    # Taken in turns, so that load from elsewhere on the machine falls on both alike, and
    # compared by the fastest of each: a stall can only make a login slower, so the fastest
    # is the one closest to what the login itself costs (medians of two failed under load).
    known, unknown = [], []
    for _ in range(PAIR_BACKOFF.free):  # the next failure would make the next try wait
        known.append(await timed("dr-berg"))
        unknown.append(await timed("nobody-here"))
    ratio = min(unknown) / min(known)
    # Both verify one argon2 hash; without the dummy hash the unknown case is ~50x faster.
    assert 0.4 < ratio < 2.5, (known, unknown)


async def test_after_three_failures_each_try_waits_and_a_try_during_the_wait_is_not_checked(client, clock, clinician):
    await english(client)
    for _ in range(4):
        assert WRONG in await (await log_in(client, "dr-berg", "wrong-password-123")).text()
    # The fourth failure set a wait: even the right password is answered with the form
    # and how long to wait, unchecked.
    held = await log_in(client, "dr-berg", PASSWORD)
    page = await held.text()
    assert held.status == 401 and "Too many failed attempts. Please wait 1 second, then log in again." in page
    assert 'id="identifier"' in page and 'value="dr-berg"' in page
    clock.advance(seconds=1)
    assert WRONG in await (await log_in(client, "dr-berg", "wrong-password-123")).text()
    assert told_to_wait(await (await log_in(client, "dr-berg", PASSWORD)).text()) == timedelta(seconds=2)
    # Tries during the wait do not stretch it.
    clock.advance(seconds=1)
    for _ in range(5):
        assert told_to_wait(await (await log_in(client, "dr-berg", PASSWORD)).text()) == timedelta(seconds=1)
    clock.advance(seconds=1)
    assert (await log_in(client, "dr-berg")).status == 303


async def attack(client, clock, identifier: str, headers: dict, tries: int) -> list[timedelta]:
    """A guesser who waits as told between tries: the waits they were told, in order."""
    waits = []
    for _ in range(tries):
        page = await (await post_form(client, "/login", {"identifier": identifier, "password": "wrong-password-123"},
                                      headers=headers)).text()
        wait = told_to_wait(page)
        if wait is not None:
            waits.append(wait)
            clock.advance(seconds=wait.total_seconds())
    return waits


async def test_a_guessers_own_waits_grow_to_fifteen_minutes(client, clock, clinician):
    waits = await attack(client, clock, "dr-berg", {}, 40)
    assert waits[:6] == [timedelta(seconds=s) for s in (1, 2, 4, 8, 16, 32)]
    assert waits == sorted(waits) and waits[-3:] == [timedelta(minutes=15)] * 3


async def test_unknown_names_wait_the_same_way(client, clock):
    await english(client)
    for _ in range(4):
        await log_in(client, "ghost", "wrong-password-123")
    assert told_to_wait(await (await log_in(client, "ghost", "wrong-password-123")).text()) == timedelta(seconds=1)


async def test_waits_survive_a_restart(aiohttp_client, client, settings, clock, clinician):
    for _ in range(4):
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
    for _ in range(PAIR_BACKOFF.free):
        await log_in(client, "dr-berg", "wrong-password-123")
    assert (await log_in(client, "dr-berg")).status == 303
    client.session.cookie_jar.clear()
    for _ in range(PAIR_BACKOFF.free):
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


async def test_parallel_wrong_passwords_cannot_outrun_the_wait(client, clinician):
    await english(client)
    token = await csrf_token(client)

    async def attempt():
        response = await client.post("/login", data={"identifier": "dr-berg", "password": "wrong-password-123", "csrf_token": token})
        return await response.text()

    pages = await asyncio.gather(*(attempt() for _ in range(20)))
    # Three free tries and the fourth, which sets the first wait; the rest wait unchecked.
    checked = [page for page in pages if WRONG in page]
    assert len(checked) <= PAIR_BACKOFF.free + 1
    assert sum("Too many failed attempts" in page for page in pages) >= 20 - PAIR_BACKOFF.free - 1


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
    elsewhere who tries six passwords for her user name just before her appointment makes
    only himself wait, not her phone."""
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
    # A browser she never used, at her address, is not held by the stranger's waits.
    async with second_browser(behind) as new_phone:
        assert (await post_form(new_phone, "/login", {"identifier": "erika", "password": PASSWORD},
                                headers=owner)).status == 303
    # Her own browser's wrong passwords still count, against that browser.
    await post_form(behind, "/logout", {}, headers=owner)
    for _ in range(6):
        await post_form(behind, "/login", {"identifier": "erika", "password": "wrong-password-123"}, headers=owner)
    assert (await post_form(behind, "/login", {"identifier": "erika", "password": PASSWORD}, headers=owner)).status == 401


async def test_an_attacker_elsewhere_holds_the_owners_new_phone_at_most_a_minute(aiohttp_client, tmp_path, database_url,
                                                                                clock, app, practice):
    """A stranger at one address guesses all night, waiting as told; one at many addresses
    spreads the guesses. The patient on a new phone (no device cookie) at her address is
    held at most ACCOUNT_BACKOFF.cap, told how long, and then gets in."""
    await add_member(app, practice, "patient", "erika")
    settings = make_settings(tmp_path, database_url, TRUSTED_PROXIES="127.0.0.0/8")
    behind = await aiohttp_client(make_app(settings, clock=clock))
    owner = {"X-Forwarded-For": "203.0.113.9", "Accept-Language": "de"}
    async with second_browser(behind) as attacker:
        waits = await attack(attacker, clock, "erika", {"X-Forwarded-For": "198.51.100.7"}, 30)
        assert waits[-1] == timedelta(minutes=15)  # his own waits grew to fifteen minutes
        # Then a crowd of addresses, each with its three free tries, without waiting.
        for number in range(20):
            await attack(attacker, clock, "erika", {"X-Forwarded-For": f"192.0.2.{number}"}, 3)
    async with second_browser(behind) as new_phone:
        first = await post_form(new_phone, "/login", {"identifier": "erika", "password": PASSWORD}, headers=owner)
        wait = told_to_wait(await first.text())
        assert first.status == 401 and wait is not None and wait <= ACCOUNT_BACKOFF.cap
        clock.advance(seconds=wait.total_seconds())
        entered = await post_form(new_phone, "/login", {"identifier": "erika", "password": PASSWORD}, headers=owner)
        assert entered.status == 303 and entered.headers["Location"] == "/"
