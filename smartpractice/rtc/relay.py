"""The media relay: rooms of aiortc peer connections that forward RTP packets
without decoding or encoding them (docs/relay.md)."""

from __future__ import annotations

from collections.abc import Iterable

from aiortc import RTCIceServer

from . import hooks
from .room import RelayRoom


class Relay:
    def __init__(self, *, ice_servers: Iterable[RTCIceServer] = ()) -> None:
        hooks.check_hooks()
        self._ice_servers = list(ice_servers)
        self._rooms: dict[str, RelayRoom] = {}

    @property
    def room_names(self) -> list[str]:
        return list(self._rooms)

    def statistics(self) -> dict[str, int]:
        """Rooms, published streams by kind, and what passed on them, for metrics:
        packets received, repairs (RTX) received, packets resent to subscribers, and
        keyframe requests sent to publishers."""
        sources = [source for room in self._rooms.values() for source in room.sources()]
        return {
            "rooms": len(self._rooms),
            "audio_streams": sum(source.kind == "audio" for source in sources),
            "video_streams": sum(source.kind == "video" for source in sources),
            "packets_received": sum(source.packets_received for source in sources),
            "repairs_received": sum(source.retransmissions_received for source in sources),
            "packets_resent": sum(forward.retransmitted for source in sources
                                  for forward in source.forwards),
            "keyframe_requests": sum(source.keyframe_requests_sent for source in sources),
        }

    def room(self, name: str) -> RelayRoom:
        if name not in self._rooms:
            self._rooms[name] = RelayRoom(name, self._ice_servers, self._forget)
        return self._rooms[name]

    def _forget(self, room: RelayRoom) -> None:
        if self._rooms.get(room.name) is room:
            del self._rooms[room.name]

    async def close(self) -> None:
        rooms, self._rooms = list(self._rooms.values()), {}
        for room in rooms:
            await room.close()
