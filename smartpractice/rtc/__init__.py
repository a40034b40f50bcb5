"""Real-time media: the packet-forwarding relay, ICE servers and the call signalling protocol."""

from .participant import SendingRefused
from .relay import Relay
from .room import Room

__all__ = ["Relay", "Room", "SendingRefused"]
