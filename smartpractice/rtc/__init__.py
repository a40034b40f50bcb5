"""The media relay: forwards RTP packets it never decodes. A leaf: it imports nothing
else of the project; rooms/ drives it."""

from .connection import SendingRefused
from .relay import Relay
from .room import RelayRoom

__all__ = ["Relay", "RelayRoom", "SendingRefused"]
