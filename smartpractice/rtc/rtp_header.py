"""Writing a forwarded packet's RTP header directly, without building an aiortc
RtpPacket: per packet and subscriber this is the relay's hottest line."""

from __future__ import annotations

from struct import Struct

from aiortc.rtcrtpparameters import RTCRtpSendParameters

MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

_FIXED = Struct("!BBHLL")
_FIXED_WITH_EXTENSION = Struct("!BBHLLHH")
_ONE_BYTE_PROFILE = 0xBEDE  # RFC 8285 section 4.2
_PADDING = (b"", b"\0", b"\0\0", b"\0\0\0")


class HeaderWriter:
    """The subscriber-side header: its SSRC and mid, the rewritten sequence number
    and timestamp, and abs-send-time and audio level copied when negotiated.

    Values come as they were on the wire (abs-send-time's three bytes, the audio
    level byte with its voice-activity bit), so nothing is decoded and encoded again.
    """

    def __init__(self, parameters: RTCRtpSendParameters) -> None:
        ids = {extension.uri: extension.id for extension in parameters.headerExtensions}
        mid = (parameters.muxId or "").encode()
        self._mid = b""
        if ids.get(MID) and mid:
            self._mid = bytes([(ids[MID] << 4) | (len(mid) - 1)]) + mid
        abs_send_time = ids.get(ABS_SEND_TIME)
        self._abs_send_time = bytes([(abs_send_time << 4) | 2]) if abs_send_time else b""
        self._audio_level = (ids.get(AUDIO_LEVEL) or 0) << 4
        # One-byte elements only: IDs 1-14 and values of 1-16 bytes.
        self.usable = all(0 < i <= 14 for i in ids.values()) and len(mid) <= 16

    def write(self, marker: int, payload_type: int, sequence_number: int,
              timestamp: int, ssrc: int, abs_send_time: bytes | None,
              audio_level: int | None) -> bytes:
        extensions = self._mid
        if abs_send_time is not None and self._abs_send_time:
            extensions += self._abs_send_time + abs_send_time
        if audio_level is not None and self._audio_level:
            extensions += bytes((self._audio_level, audio_level))
        second = (marker << 7) | payload_type
        if not extensions:
            return _FIXED.pack(0x80, second, sequence_number, timestamp, ssrc)
        extensions += _PADDING[-len(extensions) % 4]
        return _FIXED_WITH_EXTENSION.pack(
            0x90, second, sequence_number, timestamp, ssrc, _ONE_BYTE_PROFILE,
            len(extensions) >> 2) + extensions
