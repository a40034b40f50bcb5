"""Calls across real networks, not loopback: two people at home, each behind their own
router's NAT, and the practice's server and coturn on the internet (tests/networks.py: network
namespaces, veth pairs, nftables masquerading with random ports, Debian's coturn in the
`use-auth-secret` mode the product mints credentials for). Each person is an aiortc peer in
their home's namespace that connects as the browser client does (tests/p2p_peers.py), with the
ICE servers and TURN credentials the server's `welcome` gives it.

Asserted per person and per track: who is connected over which candidate pair, and that each
decodes the other's video and audio."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.helpers import PASSWORD
from tests.networks import needs_namespaces
from tests.p2p_peers import Participant, until_connected, until_frames_flow

pytestmark = needs_namespaces


@pytest.fixture
async def people(internet, call_across_nat):
    """Erika at home 1 and Paul at home 2, each joining the call from there."""
    base, consultation = call_across_nat
    erika = Participant("Erika (home 1)", internet.command_in("home1"))
    paul = Participant("Paul (home 2)", internet.command_in("home2"))
    try:
        yield erika, paul, base, consultation
    finally:
        await asyncio.gather(erika.stop(), paul.stop())


def relayed(path: dict) -> bool:
    selected = path["selected"]
    return "relay" in (selected["local"]["type"], selected["remote"]["type"])


async def test_two_homes_behind_symmetric_nat_talk_through_turn(people):
    erika, paul, base, consultation = people
    await erika.start(base, consultation, "erika", PASSWORD)
    await paul.start(base, consultation, "paul", PASSWORD)
    counts = await until_connected([erika, paul], within=40)
    for name, home in ((erika.name, 1), (paul.name, 2)):
        path = counts[name]["path"]
        assert counts[name]["topology"] == "p2p", f"{name}: the call is not peer to peer: {counts[name]}"
        # STUN told each their router's public address: a direct path was tried, and the NAT
        # (a new port for each destination) kept it from working.
        public = {c["address"].split(":")[0] for c in path["gathered"] if c["type"] == "srflx"}
        assert public == {f"100.64.{home}.2"}, f"{name} learned no public address by STUN: {path['gathered']}"
        assert relayed(path), f"{name} is connected without TURN: {path['selected']}"
    await until_frames_flow([erika, paul], frames=20, within=30)


async def test_a_home_without_udp_gets_through_turn_over_tcp(internet, people):
    erika, paul, base, consultation = people
    internet.block_udp(1)
    await erika.start(base, consultation, "erika", PASSWORD)
    await paul.start(base, consultation, "paul", PASSWORD)
    counts = await until_connected([erika, paul], within=45)
    path = counts[erika.name]["path"]
    # Her STUN query and her UDP allocation went unanswered: what she has is TURN over TCP.
    assert [c["type"] for c in path["gathered"] if c["type"] != "host"] == ["relay"], path["gathered"]
    local = path["selected"]["local"]
    assert local["type"] == "relay" and local["relay_protocol"] == "tcp", f"{erika.name}: {path['selected']}"
    assert relayed(counts[paul.name]["path"]), f"{paul.name}: {counts[paul.name]['path']['selected']}"
    await until_frames_flow([erika, paul], frames=20, within=30)


async def test_a_home_whose_line_drops_for_five_seconds_is_back_within_ten(internet, people):
    erika, paul, base, consultation = people
    await erika.start(base, consultation, "erika", PASSWORD)
    await paul.start(base, consultation, "paul", PASSWORD)
    await until_connected([erika, paul], within=40)
    await until_frames_flow([erika, paul], frames=20, within=30)
    before = await erika.counts()

    internet.cut(1)
    await asyncio.sleep(5)
    internet.restore(1)
    back = time.monotonic()
    counts = await until_frames_flow([erika, paul], frames=10, within=10)
    print(f"frames again {time.monotonic() - back:.1f} s after the line came back")
    after = counts[erika.name]
    # Her router forgot its mappings, so her TURN allocation was lost: she rejoined the
    # signalling (a new session) and both made a fresh connection through TURN.
    assert after["session"] != before["session"] and after["sockets_opened"] > before["sockets_opened"], after
    for name in (erika.name, paul.name):
        assert relayed(counts[name]["path"]), f"{name}: {counts[name]['path']['selected']}"
