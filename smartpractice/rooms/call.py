"""A running call: who is in it, whether media goes peer to peer or through the
relay, and the participants' connections to the relay.

Presence lives in the RoomState (shared between instances once Redis backs it); the
relay's rooms live behind `RelayRooms`: in this process, or on relay workers that every
instance reaches through Redis (rooms/relays.py). So nothing here decides from what this
instance alone remembers: the topology is worked out from the shared state each time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Sequence

from smartpractice.clock import Clock
from smartpractice.errors import UserError
from smartpractice.i18n import N_
from smartpractice.rooms.relays import RelayFull, RelayMoved, RelayRooms, RelayUnavailable, Sources
from smartpractice.rooms.state import CallPeer, Expired, ExpiryListener, RoomState, RoomsUnavailable
from smartpractice.rooms.waiting_room import Seat, WaitingRoom, consultation_channel
from smartpractice.rtc import NoFreePort, SendingRefused
from smartpractice.scheduling.consultations import Consultations

logger = logging.getLogger(__name__)

# Long enough for a laptop lid or a change from Wi-Fi to mobile data, short enough
# that the others do not wait for someone who closed the tab.
RECONNECT_GRACE_SECONDS = 30.0
# Two people talk directly; from the third on everyone goes through the relay.
PEER_TO_PEER_MOST = 2
# A seat whose grace ended while the room state was unreachable is let go once it answers.
UNAVAILABLE_RETRY_SECONDS = 5.0


def call_channel(consultation_id: int) -> str:
    return f"call:{consultation_id}"


def call_peer_channel(consultation_id: int, key: str) -> str:
    return f"call:{consultation_id}:{key}"


def _receiver(key: str) -> str:
    """The relay connection on which a participant receives the others."""
    return f"{key}/receive"


class Calls:
    def __init__(self, *, state: RoomState, clock: Clock, consultations: Consultations, relays: RelayRooms,
                 reconnect_grace: float = RECONNECT_GRACE_SECONDS) -> None:
        self.state = state
        self._clock = clock
        self._consultations = consultations
        self.relays = relays
        self._grace = reconnect_grace
        # What this instance last announced, for its metrics only: another instance may
        # have announced since.
        self._modes: dict[int, str] = {}
        self._expiring: set[asyncio.Task[None]] = set()
        # Announcements of one call go out one at a time, so the last list sent is the latest.
        self._announcing: dict[int, asyncio.Lock] = {}

    def inbox(self, seat: Seat) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[dict]]:
        """What reaches one participant, in order: messages for everyone in the call, for
        them alone, and the consultation's end."""
        cid = seat.consultation.id
        return self.state.subscribe(call_channel(cid), call_peer_channel(cid, seat.key), consultation_channel(cid))

    def statistics(self) -> tuple[Counter[str], dict[str, int]]:
        """Calls this instance announced, by topology, and its relay's figures (metrics)."""
        return Counter(self._modes.values()), self.relays.statistics()

    async def join(self, seat: Seat, name: str, session: str) -> None:
        cid = seat.consultation.id
        await self.state.publish(call_peer_channel(cid, seat.key), {"type": "replaced", "session": session})
        await self.state.join_call(cid, CallPeer(seat.key, name, seat.role, session))
        await self._announce(seat.consultation.id, seat.consultation.practice_id)

    async def leave(self, seat: Seat, session: str) -> None:
        cid = seat.consultation.id
        if await self.state.leave_call(cid, seat.key, session):
            await self._detach(cid, seat.key)
            await self._announce(seat.consultation.id, seat.consultation.practice_id)
        elif not await self.state.call_peers(cid):
            # The consultation ended under them: the relay lets go of everyone.
            await self._detach(cid, seat.key)
            self._modes.pop(cid, None)

    async def dropped(self, seat: Seat, session: str) -> None:
        """The connection broke without a goodbye: the others see "reconnecting" and the
        seat is kept for a grace period before it counts as a leave."""
        if not await self.state.update_call_peer(seat.consultation.id, seat.key, session, state="reconnecting"):
            return
        await self._announce(seat.consultation.id, seat.consultation.practice_id)

        async def expire() -> None:
            await asyncio.sleep(self._grace)
            while True:
                try:
                    await self.leave(seat, session)
                    return
                except RoomsUnavailable:
                    await asyncio.sleep(UNAVAILABLE_RETRY_SECONDS)

        task = asyncio.create_task(expire())
        self._expiring.add(task)
        task.add_done_callback(self._expiring.discard)

    async def set_media(self, seat: Seat, session: str, *, audio: bool, video: bool) -> None:
        if await self.state.update_call_peer(seat.consultation.id, seat.key, session, audio=audio, video=video):
            await self.state.publish(call_channel(seat.consultation.id),
                                     {"type": "mute", "from": seat.key, "audio": audio, "video": video})

    async def sealed_media(self, seat: Seat, sealed: str) -> None:
        """What a participant muted, sealed so that only the call's browsers read it: passed on,
        never kept (the seat's own state keeps its default, all on)."""
        await self.state.publish(call_channel(seat.consultation.id), {"type": "mute", "from": seat.key, "sealed": sealed})

    async def chat(self, seat: Seat, name: str, *, text: str | None = None, sealed: str | None = None) -> None:
        """Passed on to everyone in the call, never written anywhere: the text, or what only
        the participants' browsers can open (end-to-end encryption)."""
        content = {"text": text} if sealed is None else {"sealed": sealed}
        await self.state.publish(call_channel(seat.consultation.id), {
            "type": "chat", "from": seat.key, "name": name, **content, "at": self._clock.now().isoformat()})

    async def peer_to_peer_failed(self, seat: Seat) -> None:
        """No direct path between the two: the call moves to the relay and stays there."""
        if (await self.topology(seat))[0] == "p2p":
            await self.state.force_relay(seat.consultation.id)
            await self._announce(seat.consultation.id, seat.consultation.practice_id)

    async def is_member(self, seat: Seat, key: str) -> bool:
        return any(peer.key == key for peer in await self.state.call_peers(seat.consultation.id))

    async def send_to(self, seat: Seat, key: str, message: dict) -> None:
        await self.state.publish(call_peer_channel(seat.consultation.id, key), message)

    async def topology(self, seat: Seat) -> tuple[str, str]:
        """(mode, reason): "p2p" or "relay", and why."""
        return await self._topology(seat.consultation.id, seat.consultation.practice_id)

    async def _topology(self, cid: int, practice_id: int) -> tuple[str, str]:
        policy = await self._consultations.policy(practice_id)
        if policy.relay_policy == "relay":
            return "relay", "policy"
        if len(await self.state.call_peers(cid)) > PEER_TO_PEER_MOST:
            return "relay", "group"
        if await self.state.relay_forced(cid):
            return "relay", "fallback"
        return "p2p", ""

    async def relay_attach(self, seat: Seat, purpose: str, sdp: str, receive_from: Sequence[str]) -> str:
        """Connect one of a participant's two relay connections: "publish" carries their
        camera and microphone, "receive" the publishers named, in that order. Two, because
        aiortc cannot renegotiate: a newcomer only means a fresh receiving connection."""
        cid = seat.consultation.id
        if (await self.topology(seat))[0] != "relay":
            raise UserError("not_relayed", N_("This call is not going through the relay."))
        connection = seat.key if purpose == "publish" else _receiver(seat.key)
        publishers = [key for key in receive_from if key != seat.key] if purpose == "receive" else []
        try:
            attached = await self.relays.attach(cid, connection, sdp, publisher=seat.key, receive_from=publishers,
                                                publishing=purpose == "publish")
        except SendingRefused:
            # A receiving connection that sent would publish under the wrong name.
            raise UserError("invalid_field", N_("A field of this message is missing or invalid.")) from None
        except RoomsUnavailable:
            raise
        except RelayMoved:
            raise UserError("relay_moved", N_("The call moved to another server; the connection is set up again.")) \
                from None
        except RelayUnavailable:
            logger.error("no relay worker takes consultation %s: is `smartpractice relay-worker` running?", cid)
            raise UserError("relay_failed", N_("The connection to the server could not be set up.")) from None
        except NoFreePort as full:
            logger.error("relay has no free UDP port in %s-%s (SMARTPRACTICE_RELAY_PORTS) for consultation %s; "
                         "widen the range or add a relay worker", full.ports.start, full.ports.stop - 1, cid)
            raise UserError("relay_full", N_("The server has no free connection for this call right now. "
                                             "Please try again in a few minutes.")) from None
        except RelayFull:  # the worker logged which range ran out
            raise UserError("relay_full", N_("The server has no free connection for this call right now. "
                                             "Please try again in a few minutes.")) from None
        except Exception as error:
            # The offer is the browser's: whatever aiortc makes of it, the participant
            # gets an error message and may try again with a fresh one. Only the kind of
            # error is logged: its text may quote the offer.
            logger.warning("relay refused an offer in consultation %s: %s", cid, type(error).__name__)
            raise UserError("relay_failed", N_("The connection to the server could not be set up.")) from None
        if (await self.topology(seat))[0] != "relay":
            # The call turned peer to peer while this offer was being answered.
            await self.relays.release(cid)
            raise UserError("not_relayed", N_("This call is not going through the relay."))
        if purpose == "publish":
            await self._announce_sources(cid, attached.sources)
        return attached.answer

    async def _announce_sources(self, cid: int, sources: Sources) -> None:
        # Announced as read, with the reading's version: another announcement may overtake
        # this one (rooms/relays.py).
        await self.state.publish(call_channel(cid), {"type": "relay_sources", **sources})

    async def relay_sources(self, seat: Seat) -> None:
        """Who sends through the relay, for someone who just joined."""
        sources = await self.relays.publishers(seat.consultation.id)
        if sources is not None:
            await self.state.publish(call_peer_channel(seat.consultation.id, seat.key),
                                     {"type": "relay_sources", **sources})

    async def _detach(self, cid: int, key: str) -> None:
        left = await self.relays.detach(cid, (key, _receiver(key)), key)
        if left is not None:
            await self._announce_sources(cid, left)

    async def _announce(self, cid: int, practice_id: int) -> None:
        lock = self._announcing.setdefault(cid, asyncio.Lock())
        async with lock:
            await self._announce_locked(cid, practice_id)
        if not lock.locked() and not await self.state.call_peers(cid):
            self._announcing.pop(cid, None)

    async def _announce_locked(self, cid: int, practice_id: int) -> None:
        mode, reason = await self._topology(cid, practice_id)
        peers = await self.state.call_peers(cid)
        if not peers:
            mode, reason = "p2p", ""
        if mode == "p2p":
            # Whichever instance announced the relay, its room is let go now.
            await self.relays.release(cid)
        if peers:
            self._modes[cid] = mode
        else:
            self._modes.pop(cid, None)
        await self.state.publish(call_channel(cid), {
            "type": "participants", "topology": mode, "reason": reason,
            "participants": [{"id": p.key, "name": p.name, "role": p.role, "session": p.session,
                              "state": p.state, "audio": p.audio, "video": p.video} for p in peers],
        })

    def announcer(self, room: WaitingRoom) -> ExpiryListener:
        """What the room state calls when an instance's entries expired: the practices'
        lists and the calls are announced again, as they are now."""

        async def announce(expired: Expired) -> None:
            for practice_id in expired.practices:
                await room.announce(practice_id)
            for cid in expired.calls:
                owner = await room.practice_of(cid)
                if owner is not None:
                    await self._announce(cid, owner)

        return announce

    async def close(self) -> None:
        for task in list(self._expiring):
            task.cancel()
        await asyncio.gather(*self._expiring, return_exceptions=True)
        await self.relays.close()
