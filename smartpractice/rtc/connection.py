"""One participant's peer connection with the relay: what it publishes and what
it receives."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)

from . import hooks
from .candidates import end_candidates_later, without_mdns_candidates
from .forwarding import Forward, IdleTrack
from .hooks.gathering import gather_within
from .network import RelayNetwork
from .source import Source

logger = logging.getLogger(__name__)


class SendingRefused(ValueError):
    """A connection meant only for receiving offered to send."""


class RelayConnection:
    def __init__(self, participant_id: str, network: RelayNetwork,
                 on_failed: Callable[[RelayConnection], None]) -> None:
        self.id = participant_id
        self.sources: list[Source] = []
        self.forwards: list[Forward] = []
        # An explicit configuration: without one aiortc asks a public STUN server.
        # max-bundle: every m-line on the first one's transport. Under aiortc's default
        # ("balanced") an m-line joins the first one of its kind when it is made, and the
        # BUNDLE step of setRemoteDescription then skips it as already bundled: a second
        # video m-line stayed on the first video's discarded transport (port 9 in the
        # answer) and its sender never started.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=network.ice_servers(),
                                                     bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self._network = network
        self._on_failed = on_failed
        self._ending_candidates: asyncio.Task | None = None

        @self.pc.on("connectionstatechange")
        def _state_changed() -> None:
            # Failed ICE, or closed by the browser (its DTLS close_notify): either way gone.
            if self.pc.connectionState in ("failed", "closed"):
                self._on_failed(self)

    async def answer(self, offer_sdp: str, available: Iterable[Source], *, publishing: bool = True) -> str:
        """Take the offer's sending m-lines as this participant's sources and fill
        its receiving m-lines with the available sources of the same kind.
        Without `publishing`, an offer to send is refused (SendingRefused)."""
        offer_sdp, hidden = without_mdns_candidates(offer_sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        # The transports exist now (bundled into one), and gather in setLocalDescription.
        for transport in {t.receiver.transport.transport for t in self.pc.getTransceivers()}:
            gather_within(transport, ports=self._network.ports, public_address=self._network.public_address)
        waiting = list(available)
        for transceiver in self.pc.getTransceivers():
            direction = hooks.offered_direction(transceiver)
            if direction in ("recvonly", "sendrecv"):
                if not publishing:
                    raise SendingRefused(self.id)
                self._publish(transceiver)
            if direction in ("sendonly", "sendrecv"):
                source = next((s for s in waiting if s.kind == transceiver.kind), None)
                if source is not None:
                    waiting.remove(source)
                    self._subscribe(transceiver, source)
        for source in waiting:
            logger.info("participant %s offered no m-line for %s of %s",
                        self.id, source.kind, source.publisher_id)
        answer = await self.pc.createAnswer()
        # aiortc gathers every candidate here: the answer is complete, not trickled.
        await self.pc.setLocalDescription(answer)
        if hidden:
            self._ending_candidates = asyncio.create_task(end_candidates_later(self.pc))
        return self.pc.localDescription.sdp

    def _publish(self, transceiver: RTCRtpTransceiver) -> None:
        # aiortc signs a receiver's RTCP with its transceiver's sender SSRC; so does
        # the relay, which sends the receiver's RTCP itself.
        rtcp_ssrc, _ = hooks.sender_ssrcs(transceiver.sender)
        self.sources.append(Source(self.id, transceiver.kind, transceiver.receiver,
                                   rtcp_ssrc=rtcp_ssrc))

    def _subscribe(self, transceiver: RTCRtpTransceiver, source: Source) -> None:
        transceiver.sender.replaceTrack(IdleTrack(transceiver.kind))
        transceiver.direction = ("sendrecv" if hooks.offered_direction(transceiver) ==
                                 "sendrecv" else "sendonly")
        forward = Forward(source, transceiver.sender, self.id)
        self.forwards.append(forward)
        source.forwards.append(forward)

    async def close(self) -> None:
        if self._ending_candidates is not None:
            self._ending_candidates.cancel()
        for forward in self.forwards:
            if forward in forward.source.forwards:
                forward.source.forwards.remove(forward)
        self.forwards.clear()
        await asyncio.gather(*(source.close() for source in self.sources))
        await self.pc.close()
