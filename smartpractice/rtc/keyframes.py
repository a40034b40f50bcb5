"""Keyframes: telling one from the unencrypted leading bytes of an RTP payload, and
when to ask a publisher for one.

Only the VP8 payload descriptor (RFC 7741 section 4.2) and the first byte of the
VP8 payload header are read. Senders that encrypt frames end to end (WebRTC
Encoded Transform) leave those bytes in the clear, so this works on opaque
payloads too.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .source import Source

# RFC 4585 leaves the rate to the application. While a PLI is unanswered (no keyframe
# since), at most one per source per interval keeps a room of subscribers joining at once
# from flooding the publisher; a request that comes sooner is deferred to the end of the
# interval, never dropped, and a subscriber still waiting for a keyframe then is asked
# for again (a lost PLI, or a publisher that was not sending yet). Once a keyframe has
# come, the next request goes out at once: the publisher makes at most one keyframe per
# request, and a subscriber who came up just after one need not wait out the interval.
KEYFRAME_REQUEST_INTERVAL = 0.5


def is_vp8_keyframe_start(payload: bytes) -> bool:
    """True for the first packet of a VP8 keyframe."""
    if not payload:
        return False
    first = payload[0]
    start_of_partition = first & 0x10
    partition_index = first & 0x07
    if not start_of_partition or partition_index != 0:
        return False
    offset = 1
    if first & 0x80:  # X: extension byte follows
        if len(payload) < 2:
            return False
        extension = payload[1]
        offset = 2
        if extension & 0x80:  # I: picture ID, 7 or 15 bits
            if len(payload) <= offset:
                return False
            offset += 2 if payload[offset] & 0x80 else 1
        if extension & 0x40:  # L: TL0PICIDX
            offset += 1
        if extension & 0x30:  # T or K: TID/Y/KEYIDX
            offset += 1
    if len(payload) <= offset:
        return False
    # P bit of the VP8 frame tag: 0 means a keyframe (RFC 6386 section 9.1)
    return not payload[offset] & 0x01


def needs_keyframe_gate(codec_name: str) -> bool:
    """Whether a new subscriber should wait for a keyframe before packets flow.

    Only VP8 can be recognised here; other codecs are forwarded from the first
    packet and the subscriber's own PLI does the rest.
    """
    return codec_name.lower() == "vp8"


class KeyframeRequests:
    """The keyframe requests (PLI) of one source: deferred, never dropped."""

    def __init__(self, source: Source) -> None:
        self.sent = 0
        # Packets are looked at for a keyframe only while one is wanted or asked for.
        self.watching = False
        self._source = source
        self._wanted = False  # asked for by someone, not yet sent to the publisher
        self._asked = False  # a PLI is out and no keyframe has come since
        self._last = -KEYFRAME_REQUEST_INTERVAL
        self._timer: asyncio.TimerHandle | None = None

    def request(self) -> None:
        """At once, or when the interval allows, or (before the source's first packet)
        with that packet."""
        self._wanted = self.watching = True
        if self._timer is None:
            self._schedule()

    def watch(self, codec_name: str, payload: bytes) -> None:
        """A packet of the source while watching (rare): a keyframe that starts answers
        every request so far; else a request that waited for the source's first packet
        goes out, and one unanswered for an interval throttles no longer."""
        if needs_keyframe_gate(codec_name) and is_vp8_keyframe_start(payload):
            self._wanted = self._asked = self.watching = False
            self._cancel()
        elif self._wanted:
            if self._timer is None:
                self._schedule()
        elif (not needs_keyframe_gate(codec_name)
              or time.monotonic() > self._last + KEYFRAME_REQUEST_INTERVAL):
            self._asked = self.watching = False

    def _schedule(self) -> None:
        delay = self._last + KEYFRAME_REQUEST_INTERVAL - time.monotonic() if self._asked else 0.0
        if delay <= 0:
            self._due()
        else:
            self._timer = asyncio.get_running_loop().call_later(delay, self._due)

    def _due(self) -> None:
        self._timer = None
        waiting = self._source.waiting_for_keyframe
        if not (self._wanted or waiting) or not self._source.send_keyframe_request():
            return  # nothing to ask, or no packet yet to address it to
        self._wanted = False
        self._asked = self.watching = True
        self._last = time.monotonic()
        self.sent += 1
        if waiting:
            # Asked again after the interval unless the keyframe has come by then.
            self._timer = asyncio.get_running_loop().call_later(KEYFRAME_REQUEST_INTERVAL,
                                                                self._due)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        self._cancel()
