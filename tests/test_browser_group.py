"""Group calls through the relay with browsers, tile by tile (tests/call_pages.py): six
people, the practice's limit, with a Chromium and a Firefox page beside aiortc participants
in processes of their own (six browsers do not fit two cores), each checked per track; and
three browsers joining and leaving in every order, so that the call moves to the relay and
back to peer to peer with each person in each place."""

from __future__ import annotations

import pytest
from playwright.async_api import expect
from sqlalchemy import update

from smartpractice.keys import engine_key, services_key
from smartpractice.storage.tables import practices
from tests.call_pages import (
    DOCTOR,
    PATIENT,
    assert_direct,
    assert_relayed,
    enter_call,
    until_every_tile_plays,
)
from tests.firefox_pages import needs_firefox
from tests.group_peers import CallParticipant
from tests.helpers import PASSWORD, add_member, consultation_at_lindenhof, logged_in, needs_chromium

pytestmark = needs_chromium


async def with_patients(app, practice, consultation, names: list[str]) -> None:
    """More patients in Erika's consultation, each let in already."""
    services = app[services_key]
    ids = [await add_member(app, practice, "patient", name) for name in names]
    await services.consultations.add_participants(practice, consultation.id, None, patient_ids=ids)
    for key in ids:
        await services.waiting_room.state.admit(practice.id, consultation.id, f"u{key}")


@needs_firefox
async def test_six_people_through_the_relay_browsers_and_aiortc(live_server, browser, firefox):
    """The clinician in Chromium, Erika in Firefox, and Paul and three relatives as aiortc
    participants speaking the browser's signalling: each browser page plays every one of the
    five others' tiles, and each aiortc participant decodes every one of the five others'
    video and audio. The aiortc participants cannot encrypt end to end; the practice lets
    them in. (Three browsers and three aiortc participants stalled on two cores shared with
    other work: one aiortc participant or two of its tiles stopped for good.)"""
    app, practice, consultation, base = await consultation_at_lindenhof(live_server, e2ee_policy="allow_transport")
    async with app[engine_key].begin() as conn:
        # Six people: the clinician and five others, the most a practice may set.
        await conn.execute(update(practices).where(practices.c.id == practice.id).values(max_participants=5))
    relatives = ["Paul", "Oma", "Opa", "Tante"]
    await with_patients(app, practice, consultation, [name.lower() for name in relatives])
    pages, errors = {}, {}
    for name, username, runs_in in ((DOCTOR, "dr-sommer", browser), (PATIENT, "erika", firefox)):
        pages[name], errors[name] = await logged_in(runs_in, base, username, app if name == DOCTOR else None)
        await enter_call(pages[name], base, consultation.id)

    aiortc = {name: CallParticipant(name) for name in relatives}
    try:
        for name, participant in aiortc.items():
            await participant.start(base, consultation.id, name.lower(), PASSWORD)
        for page in pages.values():
            await page.wait_for_selector("#call[data-topology=relay]")
        shown = await until_every_tile_plays(pages, also=tuple(relatives), within=90)
        assert_relayed(shown)
        everyone = [*pages, *relatives]
        for name, participant in aiortc.items():
            await participant.until_receiving([other for other in everyone if other != name], within=60)
    finally:
        for participant in aiortc.values():
            await participant.stop()
    assert all(found == [] for found in errors.values()), errors


PEOPLE = {DOCTOR: "dr-sommer", PATIENT: "erika", "Paul": "paul"}

# Who joins in which order, and who leaves first and then second (after the first came
# back). Each person joins first, second and third once and leaves first once, and the
# first to leave is the last, then the first, then the middle one to have joined.
ORDERS = [
    pytest.param([DOCTOR, PATIENT, "Paul"], ["Paul", DOCTOR], id="last-joined-leaves-first"),
    pytest.param([PATIENT, "Paul", DOCTOR], [PATIENT, "Paul"], id="first-joined-leaves-first"),
    pytest.param(["Paul", DOCTOR, PATIENT], [DOCTOR, PATIENT], id="middle-joined-leaves-first"),
]


@pytest.mark.parametrize(("joining", "leaving"), ORDERS)
async def test_three_browsers_join_and_leave_in_every_order(live_server, browser, joining, leaving):
    """Three Chromium pages join one after the other (peer to peer for the first two, the
    relay when the third comes); one leaves (the two left go back to peer to peer) and comes
    back (the relay again); then another leaves. After each step every page plays each other
    person's tile, through the relay or straight between the two browsers."""
    app, practice, consultation, base = await consultation_at_lindenhof(live_server)
    await with_patients(app, practice, consultation, ["paul"])
    pages, errors = {}, {}
    for name in PEOPLE:
        pages[name], errors[name] = await logged_in(browser, base, PEOPLE[name], app if name == DOCTOR else None)

    async def in_call(names: list[str]) -> None:
        present = {name: pages[name] for name in names}
        topology = "relay" if len(names) > 2 else "p2p"
        for page in present.values():
            await page.wait_for_selector(f"#call[data-topology={topology}]")
            await expect(page.locator(".tile[data-peer]")).to_have_count(len(names) - 1, timeout=30_000)
        shown = await until_every_tile_plays(present)
        (assert_relayed if topology == "relay" else assert_direct)(shown)

    for count, name in enumerate(joining, start=1):
        await enter_call(pages[name], base, consultation.id)
        if count >= 2:
            await in_call(joining[:count])

    first, second = leaving
    await pages[first].click("#hang-up")
    await in_call([name for name in joining if name != first])
    await enter_call(pages[first], base, consultation.id)
    await in_call(joining)
    await pages[second].click("#hang-up")
    await in_call([name for name in joining if name != second])
    assert all(found == [] for found in errors.values()), errors
