"""Real-time media: the packet-forwarding relay (signalling comes separately)."""

from .relay import Relay
from .room import Room

__all__ = ["Relay", "Room"]
