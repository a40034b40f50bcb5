"""The media relay: rooms of aiortc peer connections that forward RTP packets
without decoding or encoding them (docs/relay.md)."""

from __future__ import annotations

from . import hooks
from .network import RelayNetwork
from .room import RelayRoom


class Relay:
    def __init__(self, network: RelayNetwork | None = None) -> None:
        hooks.check_hooks()
        self.network = network or RelayNetwork()
        self._rooms: dict[str, RelayRoom] = {}

    @property
    def room_names(self) -> list[str]:
        return list(self._rooms)

    def statistics(self) -> dict[str, int]:
        """Rooms, peer connections, published streams by kind, and what passed on them,
        for metrics: packets received, packets forwarded to subscribers, repairs (RTX)
        received, packets resent to subscribers, keyframe requests sent to publishers,
        payload bytes in and out, and packets not forwarded (``dropped_<reason>``,
        counted per subscriber)."""
        sources = [source for room in self._rooms.values() for source in room.sources()]
        forwards = [forward for source in sources for forward in source.forwards]
        drops = [forward.drops() for forward in forwards]
        return {
            "rooms": len(self._rooms),
            "connections": sum(len(room.participant_ids) for room in self._rooms.values()),
            "audio_streams": sum(source.kind == "audio" for source in sources),
            "video_streams": sum(source.kind == "video" for source in sources),
            "packets_received": sum(source.packets_received for source in sources),
            "repairs_received": sum(source.retransmissions_received for source in sources),
            "packets_sent": sum(forward.packets_sent for forward in forwards),
            "packets_resent": sum(forward.retransmitted for forward in forwards),
            "keyframe_requests": sum(source.keyframe_requests_sent for source in sources),
            "bytes_received": sum(source.payload_bytes_received for source in sources),
            "bytes_sent": sum(forward.payload_bytes_sent for forward in forwards),
            "dropped_malformed": sum(source.packets_malformed for source in sources),
            **{f"dropped_{reason}": sum(d[reason] for d in drops)
               for reason in ("not_connected", "codec", "keyframe_wait")},
        }

    def room(self, name: str) -> RelayRoom:
        if name not in self._rooms:
            self._rooms[name] = RelayRoom(name, self.network, self._forget)
        return self._rooms[name]

    def _forget(self, room: RelayRoom) -> None:
        if self._rooms.get(room.name) is room:
            del self._rooms[room.name]

    async def close(self) -> None:
        rooms, self._rooms = list(self._rooms.values()), {}
        for room in rooms:
            await room.close()
