"""A room of the relay: the participants of one call and who receives whom."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from .connection import RelayConnection
from .network import RelayNetwork
from .source import Source


class RelayRoom:
    def __init__(self, name: str, network: RelayNetwork,
                 on_empty: Callable[[RelayRoom], None]) -> None:
        self.name = name
        self._network = network
        self._participants: dict[str, RelayConnection] = {}
        self._on_empty = on_empty
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def participant_ids(self) -> list[str]:
        return list(self._participants)

    def participant(self, participant_id: str) -> RelayConnection:
        return self._participants[participant_id]

    def sources(self, *, excluding: str | None = None) -> list[Source]:
        return [source for pid, p in self._participants.items() if pid != excluding
                for source in p.sources]

    def publishers(self) -> dict[str, list[str]]:
        """Who publishes what: participant id and the kinds of its tracks."""
        return {pid: [source.kind for source in p.sources] for pid, p in self._participants.items() if p.sources}

    async def attach(self, participant_id: str, offer_sdp: str, receive_from: Sequence[str] | None = None, *,
                     publishing: bool = True) -> str:
        """Connect a participant: its tracks are published, and the m-lines it
        offers for receiving carry the tracks of everyone already here, or of the
        publishers in `receive_from`, in that order and kind by kind. Without
        `publishing` the connection may only receive (else SendingRefused).

        Attaching again replaces the previous connection (a reconnect, or to
        receive participants who joined since: aiortc does not renegotiate).
        """
        if participant_id in self._participants:
            await self._remove(participant_id)
        participant = RelayConnection(participant_id, self._network, self._failed)
        self._participants[participant_id] = participant
        try:
            if receive_from is None:
                available = self.sources(excluding=participant_id)
            else:
                available = [source for pid in receive_from if pid in self._participants and pid != participant_id
                             for source in self._participants[pid].sources]
            return await participant.answer(offer_sdp, available, publishing=publishing)
        except Exception:
            # Only its own connection: a second attach meanwhile replaced (and closed) this one.
            if self._participants.get(participant_id) is participant:
                await self.detach(participant_id)
            raise

    async def detach(self, participant_id: str) -> None:
        if participant_id in self._participants:
            await self._remove(participant_id)
        if not self._participants:
            self._on_empty(self)

    async def _remove(self, participant_id: str) -> None:
        participant = self._participants.pop(participant_id)
        await participant.close()

    def _failed(self, participant: RelayConnection) -> None:
        # ICE gave up: free the connection so the participant can attach afresh.
        if self._participants.get(participant.id) is participant:
            task = asyncio.ensure_future(self.detach(participant.id))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        for participant_id in list(self._participants):
            await self._remove(participant_id)
