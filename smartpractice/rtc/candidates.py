"""A browser's addresses hidden behind mDNS names, as the relay meets them.

A browser without a camera or microphone grant names its host candidates only by an
mDNS hostname (`<uuid>.local`, draft-ietf-mmusic-mdns-ice-candidates), which only its own
network can resolve; a server never can. Firefox also ends such a complete offer with
`a=end-of-candidates`, and aioice, left with no candidate at all, then fails at once
instead of waiting for the browser's checks, which show its address (a peer-reflexive
candidate, RFC 8445 section 7.3.1.3). So the relay drops the `.local` candidates before
aiortc sees them (sparing it a second of futile mDNS queries per connection) and, when
it dropped any, passes end-of-candidates on only after PEER_REFLEXIVE_SECONDS.
"""

from __future__ import annotations

import asyncio
import re

from aiortc import RTCPeerConnection

MDNS_CANDIDATE = re.compile(r"^a=candidate:\S+ \d+ \S+ \d+ \S+\.local \d+ .*(?:\r?\n|$)", re.M | re.I)
END_OF_CANDIDATES = re.compile(r"^a=end-of-candidates(?:\r?\n|$)", re.M)
# How long the browser's checks have to arrive once it has the answer; then ICE may fail.
PEER_REFLEXIVE_SECONDS = 10.0


def without_mdns_candidates(sdp: str) -> tuple[str, bool]:
    """The description without its `.local` candidates and, if it had any, without its
    end-of-candidates; and whether it had any."""
    kept, dropped = MDNS_CANDIDATE.subn("", sdp)
    if not dropped:
        return sdp, False
    return END_OF_CANDIDATES.sub("", kept), True


async def end_candidates_later(pc: RTCPeerConnection) -> None:
    """End-of-candidates for each ICE transport of `pc`, after PEER_REFLEXIVE_SECONDS: a
    connection that learnt no address from the browser's checks by then fails, as it should."""
    await asyncio.sleep(PEER_REFLEXIVE_SECONDS)
    transports = {t.receiver.transport.transport for t in pc.getTransceivers() if t.receiver.transport}
    for transport in transports:
        if transport.state not in ("closed", "failed"):
            await transport.addRemoteCandidate(None)
