"""Practices sign themselves up, confirm by mail, and only then act; or ask for an offer."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiohttp import web
from sqlalchemy import select

from smartpractice.keys import services_key
from smartpractice.storage.tables import offer_requests, practices
from tests.helpers import (
    APPLICATION,
    add_member,
    form_token,
    log_in,
    mail_link,
    mail_settled,
    mail_text,
    make_app,
    make_settings,
    post_form,
    send_enquiry,
    send_signup,
)


async def sign_up(client, **changes):
    return await send_signup(client, {**APPLICATION, **changes}, headers={"Accept-Language": "en"})


async def test_sign_up_needs_confirmation_before_anything_works(client, services, engine, smtp):
    client.session.headers["Accept-Language"] = "en"
    done = await sign_up(client)
    assert done.status == 200 and "birke@example.org" in await done.text()
    [mail] = await smtp.wait_for(1)
    assert "Hausarztpraxis Birke" in mail_text(mail)
    async with engine.connect() as conn:
        row = (await conn.execute(select(practices))).one()
    assert row.confirmed_at is None and row.kind == "group" and row.seats == 3
    # Unconfirmed: the admin cannot log in, the registration link is closed, keys open nothing.
    refused = await log_in(client, "dr-birke", APPLICATION["password"])
    assert refused.status == 401 and "confirm your email" in await refused.text()
    key = await services.api_keys.create(await services.practices.by_slug(row.slug), "EDV")
    assert await services.api_keys.authenticate(key.key) is None

    link = mail_link(mail)
    await post_form(client, link, {})
    response = await log_in(client, "dr-birke", APPLICATION["password"])
    assert response.status == 303
    assert (await client.get("/", allow_redirects=False)).headers["Location"] == "/account/two-factor/setup"
    assert await services.api_keys.authenticate(key.key) is not None


async def test_bad_input_reshows_the_form_with_the_reason(client, smtp):
    for changes, message in (
        ({"kind": "spa"}, "choose a kind of practice"),
        ({"password_repeat": "something-else"}, "not the same"),
        ({"password": "kurz", "password_repeat": "kurz"}, "at least 12 characters"),
        ({"consent": ""}, "agree to the terms"),
        ({"email": "no-address"}, "valid email address"),
        ({"address": ""}, "Please enter the practice"),
    ):
        response = await sign_up(client, **changes)
        page = await response.text()
        assert response.status == 400, changes
        assert message in page, (changes, message)
        assert 'value="Hausarztpraxis Birke"' in page
    await mail_settled(client.app)
    assert smtp.messages == []


async def test_a_known_address_gets_the_same_answer_and_its_owner_a_mail(client, app, engine, smtp, practice):
    await add_member(app, practice, "clinician", "dr-berg")
    response = await sign_up(client, email="dr-berg@example.org")
    assert response.status == 200
    [mail] = await smtp.wait_for(1)
    assert mail["To"] == "dr-berg@example.org"
    async with engine.connect() as conn:
        assert len(list(await conn.execute(select(practices)))) == 1


async def test_pricing_page_is_computed_from_the_price_table(aiohttp_client, tmp_path, database_url):
    settings = make_settings(tmp_path, database_url, PRICE_TABLE="single:40:1:20,mvz:100:5:10")
    client = await aiohttp_client(make_app(settings))
    page = await (await client.get("/pricing", headers={"Accept-Language": "en"})).text()
    assert "Single practice" in page and "Medical care centre" in page
    # single with 3 clinicians: 40 + 2 * 20; mvz with 10: 100 + 5 * 10.
    assert "<td>80 €</td>" in page and "<td>150 €</td>" in page
    assert "Group practice" not in page


async def test_the_pricing_page_says_whether_vat_is_included(aiohttp_client, tmp_path, database_url):
    cases = {("19", "no"): "Alle Preise pro Monat, zuzüglich 19 % Umsatzsteuer.",
             ("7", "yes"): "Alle Preise pro Monat, inklusive 7 % Umsatzsteuer.",
             ("0", "no"): "Auf diese Preise wird keine Umsatzsteuer erhoben."}
    for (percent, included), said in cases.items():
        settings = make_settings(tmp_path, database_url, VAT_PERCENT=percent, PRICES_INCLUDE_VAT=included)
        client = await aiohttp_client(make_app(settings))
        page = await (await client.get("/pricing", headers={"Accept-Language": "de"})).text()
        assert f'<p id="vat">{said}</p>' in page, percent


async def test_the_sign_up_form_sent_twice_makes_one_practice_and_one_mail(client, smtp, engine):
    """A double click or a reload of "Sign up": one practice, one confirmation mail, and the
    second answer is the same "check your mail" page, not "user name taken"."""
    token = await form_token(client, "/signup")
    first = await send_signup(client, APPLICATION, token=token, headers={"Accept-Language": "en"})
    again = await send_signup(client, APPLICATION, token=token, headers={"Accept-Language": "en"})
    assert first.status == again.status == 200
    assert (await first.text()).count(APPLICATION["email"]) == (await again.text()).count(APPLICATION["email"]) >= 1
    await mail_settled(client.app)
    assert [m["To"] for m in smtp.messages] == [APPLICATION["email"]]
    async with engine.connect() as conn:
        assert len(list(await conn.execute(select(practices)))) == 1


ENQUIRY = {"name": "Anna Ahorn", "practice_name": "MVZ Ahorn", "email": "ahorn@example.org", "phone": "",
           "message": "Zwölf Ärztinnen, ab Januar."}


@pytest.fixture
async def sales_client(aiohttp_client, tmp_path, database_url, smtp):
    """A browser on a service whose operator takes enquiries at sales@example.org."""
    settings = make_settings(
        tmp_path, database_url, OPERATOR_EMAIL="sales@example.org", SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(smtp.controller.port), SMTP_TLS="none",
    )
    return await aiohttp_client(make_app(settings))


async def test_contact_form_is_stored_and_mailed_to_the_operator(sales_client, smtp):
    bad = await send_enquiry(sales_client, {**ENQUIRY, "email": "nope"})
    assert bad.status == 400 and "MVZ Ahorn" in await bad.text()
    sent = await send_enquiry(sales_client, ENQUIRY)
    assert sent.status == 200
    [mail] = await smtp.wait_for(1)
    assert mail["To"] == "sales@example.org" and "Zwölf Ärztinnen" in mail_text(mail)


async def test_an_enquiry_whose_browser_went_away_midway_is_stored_and_mailed_once(
        aiohttp_client, tmp_path, database_url, smtp):
    """The browser drops the sending while the server handles it (a second click, a closed
    tab): the enquiry is still stored and mailed, once, and the next sending is served, not
    kept waiting by a transaction cut off in the middle."""
    settings = make_settings(tmp_path, database_url, OPERATOR_EMAIL="sales@example.org", SMTP_HOST="127.0.0.1",
                             SMTP_PORT=str(smtp.controller.port), SMTP_TLS="none")
    app = make_app(settings)
    arrived, go_on = asyncio.Event(), asyncio.Event()

    @web.middleware
    async def held(request, handler):  # the last middleware: just before the form's handler
        if request.method == "POST" and request.path == "/contact" and not go_on.is_set():
            arrived.set()
            await go_on.wait()
        return await handler(request)

    app.middlewares.append(held)
    client = await aiohttp_client(app)
    sending = asyncio.create_task(send_enquiry(client, ENQUIRY))
    await asyncio.wait_for(arrived.wait(), 10)
    sending.cancel()  # its connection closes, and aiohttp cancels the server's handler
    with contextlib.suppress(asyncio.CancelledError):
        await sending
    await asyncio.sleep(0.5)
    go_on.set()
    async with asyncio.timeout(10):
        while not await client.app[services_key].offer_requests.recent():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    again = await send_enquiry(client, {**ENQUIRY, "practice_name": "MVZ Birke"})
    assert again.status == 200
    await mail_settled(client.app)
    assert [m["To"] for m in smtp.messages] == ["sales@example.org"] * 2
    assert sorted(o.practice_name for o in await client.app[services_key].offer_requests.recent()) == [
        "MVZ Ahorn", "MVZ Birke"]


async def test_the_contact_form_sent_twice_makes_one_request_and_one_mail(sales_client, smtp):
    """A reload or a double click of the contact form: one stored request, one mail to the
    operator, and the second answer is the same "sent" page, not an error."""
    token = await form_token(sales_client, "/contact")
    first = await send_enquiry(sales_client, ENQUIRY, token=token)
    again = await send_enquiry(sales_client, ENQUIRY, token=token)
    assert first.status == again.status == 200
    for answer in (first, again):
        assert 'class="notice" role="status"' in await answer.text()
    await mail_settled(sales_client.app)
    assert [m["To"] for m in smtp.messages] == ["sales@example.org"]
    assert [offer.practice_name for offer in await sales_client.app[services_key].offer_requests.recent()] == ["MVZ Ahorn"]


async def test_offer_requests_are_listed_for_the_operator(client, services, engine):
    await send_enquiry(client, {"name": "Anna", "practice_name": "MVZ Ahorn", "email": "a@example.org",
                                "phone": "", "message": "Angebot bitte"})
    async with engine.connect() as conn:
        assert len(list(await conn.execute(select(offer_requests)))) == 1
    assert [offer.practice_name for offer in await services.offer_requests.recent()] == ["MVZ Ahorn"]
