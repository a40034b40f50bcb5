"""The media relay: forwards RTP packets it never decodes. A leaf: it imports nothing
else of the project; rooms/ drives it."""

from .connection import SendingRefused
from .hooks.gathering import NoFreePort
from .network import RelayNetwork
from .relay import Relay
from .room import RelayRoom

__all__ = ["NoFreePort", "Relay", "RelayNetwork", "RelayRoom", "SendingRefused"]
