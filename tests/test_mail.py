"""The outbox: mails written with their cause, delivered over real SMTP, never lost, never twice."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from smartpractice.keys import engine_key, mail_sender_key, services_key
from smartpractice.mail.sender import STALE_CLAIM, MailSender
from smartpractice.storage import mails as store
from smartpractice.storage.tables import mails
from tests.helpers import mail_settled, mail_text, make_app, make_settings

CONTEXT = {"name": "Erika Muster", "link": "http://localhost:8080/password-reset/abc"}


async def enqueue(app, *, language="de", to="erika@example.org") -> int:
    async with app[engine_key].begin() as conn:
        return await app[services_key].outbox.enqueue(conn, kind="password_reset", to=to, language=language, context=CONTEXT)


async def rows(engine):
    async with engine.connect() as conn:
        return (await conn.execute(select(mails).order_by(mails.c.id))).all()


async def test_mail_is_multipart_german_by_default(client, app, smtp, settings):
    await enqueue(app)
    [message] = await smtp.wait_for(1)
    assert message["To"] == "erika@example.org"
    assert message["From"] == settings.mail_from
    assert message["Subject"] == "Neues Passwort festlegen"
    assert message["Message-ID"].endswith("@localhost>")
    assert {part.get_content_type() for part in message.iter_parts()} == {"text/plain", "text/html"}
    assert "Hallo Erika Muster," in mail_text(message)
    assert CONTEXT["link"] in mail_text(message)
    assert f'href="{CONTEXT["link"]}"' in message.get_body(preferencelist=("html",)).get_content()


async def test_mail_in_the_recipients_language(client, app, smtp):
    await enqueue(app, language="en")
    [message] = await smtp.wait_for(1)
    assert message["Subject"] == "Set a new password"
    assert "Hello Erika Muster," in mail_text(message)


async def test_sent_mail_keeps_no_body(client, app, engine, smtp):
    await enqueue(app)
    await mail_settled(app)
    [row] = await rows(engine)
    assert row.status == "sent" and row.text_body == "" and row.html_body == ""


async def test_rolled_back_change_sends_nothing(client, app, services, engine, smtp):
    try:
        async with engine.begin() as conn:
            await services.outbox.enqueue(conn, kind="password_reset", to="x@example.org", language="de", context=CONTEXT)
            raise RuntimeError("the cause failed")
    except RuntimeError:
        pass
    await mail_settled(app)
    assert smtp.messages == [] and await rows(engine) == []


async def test_smtp_refusing_for_a_while_delays_but_delivers_once(client, app, engine, smtp, clock):
    smtp.refuse = True
    await enqueue(app)
    await mail_settled(app)
    [row] = await rows(engine)
    assert row.attempts == 1 and row.status == "pending"
    assert row.last_error.startswith("SMTPDataError")
    smtp.refuse = False
    clock.advance(seconds=31)
    await mail_settled(app)
    assert len(smtp.messages) == 1
    [row] = await rows(engine)
    assert row.status == "sent" and row.attempts == 2


async def test_mail_survives_smtp_down_and_a_restart(aiohttp_client, tmp_path, database_url, clock, smtp):
    closed_port = make_settings(tmp_path, database_url, SMTP_HOST="127.0.0.1", SMTP_PORT="9", SMTP_TLS="none")
    first = await aiohttp_client(make_app(closed_port, clock=clock))
    app, engine = first.app, first.app[engine_key]
    await enqueue(app)
    await mail_settled(app)
    assert (await rows(engine))[0].attempts == 1
    await first.close()

    clock.advance(minutes=2)
    working = make_settings(tmp_path, database_url, SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp.controller.port), SMTP_TLS="none")
    await aiohttp_client(make_app(working, clock=clock))
    [message] = await smtp.wait_for(1)
    assert message["To"] == "erika@example.org"


async def test_crash_between_send_and_mark_does_not_send_twice(client, app, engine, smtp, settings, clock):
    # Play the sender that crashed: claim, deliver, and never mark the mail sent.
    sender = MailSender(engine=engine, clock=clock, settings=settings, wake=asyncio.Event())
    mail_id = await enqueue(app)
    await mail_settled(app)  # the app's own sender delivered it; now make it look cut off
    assert len(smtp.messages) == 1
    async with engine.begin() as conn:
        await conn.execute(mails.update().where(mails.c.id == mail_id).values(status="sending", claimed_at=clock.now()))
    clock.advance(seconds=STALE_CLAIM.total_seconds() + 1)
    assert await sender.release_stale() == 1
    assert await sender.send_due() == 0
    [row] = await rows(engine)
    assert row.status == "uncertain"
    assert len(smtp.messages) == 1


async def test_a_stop_cuts_a_mail_the_server_has_not_taken_and_hands_it_back(client, app, engine, smtp, settings, clock):
    smtp.data_pause = 60  # the server sits on the data; the stop's budget runs out first
    await enqueue(app)
    async with asyncio.timeout(10):
        while smtp.data_received == 0:  # noqa: ASYNC110 - counted in aiosmtpd's thread
            await asyncio.sleep(0.02)
    async with asyncio.timeout(5):
        await app[mail_sender_key].finish(within=1.0)
    [row] = await rows(engine)
    assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 0, clock.now())
    async with asyncio.timeout(5):
        while smtp.data_abandoned == 0:  # noqa: ASYNC110 - the server saw the client hang up
            await asyncio.sleep(0.02)
    assert smtp.messages == []
    smtp.data_pause = 0
    assert await MailSender(engine=engine, clock=clock, settings=settings, wake=asyncio.Event()).send_due() == 1
    assert len(smtp.messages) == 1 and (await rows(engine))[0].status == "sent"


async def test_two_senders_never_send_the_same_mail(client, app, engine, smtp, settings, clock):
    smtp.refuse = True  # keep the app's sender from taking it first
    await enqueue(app)
    await mail_settled(app)
    smtp.refuse = False
    clock.advance(minutes=1)
    senders = [MailSender(engine=engine, clock=clock, settings=settings, wake=asyncio.Event()) for _ in range(3)]
    results = await asyncio.gather(*(sender.send_due() for sender in senders))
    assert sum(results) <= 1
    await smtp.wait_for(1)
    await mail_settled(app)  # the app's own sender had its chance too
    assert len(smtp.messages) == 1


async def test_without_smtp_mails_land_in_the_outbox_folder(client, app, engine, settings):
    await enqueue(app)
    await mail_settled(app)
    [eml] = settings.outbox_dir.glob("*.eml")
    content = eml.read_bytes()
    assert b"To: erika@example.org" in content and CONTEXT["link"].encode() in content
    async with engine.connect() as conn:
        assert await store.status_counts(conn) == {"sent": 1}
