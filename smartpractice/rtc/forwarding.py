"""One subscriber's copy of a published stream: header rewriting, history, feedback.

The payload is never looked at beyond the keyframe test, so frames that the
browsers encrypt end to end pass unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from aiortc import MediaStreamTrack, RTCRtpSender
from aiortc.codecs import is_rtx
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
    unpack_remb_fci,
    wrap_rtx,
)

from . import hooks
from .keyframes import is_vp8_keyframe_start, needs_keyframe_gate
from .rtp_header import HeaderWriter

if TYPE_CHECKING:
    from .source import Source

logger = logging.getLogger(__name__)

HISTORY_SIZE = 512
# A NACK for a packet sent again this recently crossed that packet on the way (the
# subscriber asked before the relay's repair reached it) and is not answered; a
# browser asks again if the packet stays missing. libwebrtc waits one round trip.
RESEND_GUARD = 0.1


class IdleTrack(MediaStreamTrack):
    """Stands in for a track on a relay sender: it never yields, so aiortc's send
    loop sleeps while the relay writes packets to the transport itself."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._stopped = asyncio.Event()

    async def recv(self):  # noqa: ANN201
        await self._stopped.wait()
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        self._stopped.set()


class Forward:
    """Packets of one source, rewritten for one subscriber's sender."""

    def __init__(self, source: Source, sender: RTCRtpSender, subscriber_id: str) -> None:
        self.source = source
        self.subscriber_id = subscriber_id
        self.bitrate: int | None = None  # last REMB from the subscriber
        self.packets_sent = 0
        self.retransmitted = 0  # packets sent again: answers to NACKs, repairs
        # Packets of the source not sent to this subscriber (metrics), by reason:
        self._unconfigured = 0  # before the connection is up and its codecs known
        self._without_codec = 0  # of a codec the subscriber did not negotiate
        self._before_keyframe = 0  # video held back until a keyframe (keyframes.py)
        self._sender = sender
        self._output: hooks.RtpOutput | None = None
        self._ssrc, self._rtx_ssrc = hooks.sender_ssrcs(sender)
        self._mid: str | None = None
        self._payload_types: dict[str, int] = {}
        self._rtx_payload_types: dict[int, int] = {}
        self._rtx_sequence = 0
        self._extensions = HeaderExtensionsMap()  # the negotiated IDs from _configure on
        # Serialized packets by sequence number modulo HISTORY_SIZE; the sequence
        # number in each packet's header tells whether it is still the one asked for.
        self._history: list[bytes | None] = [None] * HISTORY_SIZE
        self._resent_at = [0.0] * HISTORY_SIZE  # monotonic time, by the same index
        self._writer: HeaderWriter | None = None
        self._octets = 0
        # Offsets are fixed per incoming SSRC; they change only when the
        # publisher's stream restarts, so gaps keep their meaning for NACKs.
        self._in_ssrc: int | None = None
        self._seq_offset = 0
        self._ts_offset = 0
        self._last_seq: int | None = None
        self._first_seq = 0  # the first sent from the current incoming SSRC
        self._last_ts = 0
        self._last_time = 0.0
        # Until the first packet goes out. A video subscriber that joins mid-stream
        # gets nothing until the next keyframe rather than undecodable deltas (see
        # keyframes.py); the source keeps asking the publisher for one meanwhile.
        self._first = True
        self._started = 0.0
        # Seconds from the subscriber's connection coming up to its first packet.
        self.first_packet_after: float | None = None
        hooks.take_over_sender(sender, self.handle_rtcp, self._rewrite_sr)
        hooks.capture_send_parameters(sender, self._configure)

    @property
    def active(self) -> bool:
        return bool(self._payload_types)

    @property
    def payload_bytes_sent(self) -> int:
        return self._octets

    def drops(self) -> dict[str, int]:
        """Packets not sent to this subscriber, by reason (docs/operations.md)."""
        unsent = self._output.dropped if self._output is not None else 0
        return {"not_connected": self._unconfigured + unsent, "codec": self._without_codec,
                "keyframe_wait": self._before_keyframe}

    @property
    def waiting_for_keyframe(self) -> bool:
        """Connected, able to take the source's codec, and held back until a keyframe."""
        if (not self._first or self.source.kind != "video" or self._output is None
                or not self._output.connected):
            return False
        codec = self.source.codec_name
        return codec is None or (codec in self._payload_types and needs_keyframe_gate(codec))

    def _configure(self, parameters: RTCRtpSendParameters) -> None:
        self._mid = parameters.muxId
        # aiortc calls send() once the DTLS transport is up, bundled or not.
        self._output = hooks.RtpOutput(self._sender.transport)
        self._extensions = hooks.header_extensions(self._sender.transport)
        writer = HeaderWriter(parameters)
        self._writer = writer if writer.usable else None
        # Forwarding cannot transcode: a packet whose codec the subscriber did
        # not negotiate is dropped.
        rtx_for: dict[int, int] = {}  # media payload type -> its RTX payload type
        for codec in parameters.codecs:
            payload_type = codec.payloadType
            assert payload_type is not None  # unset only in codec preferences, not here
            if not is_rtx(codec):
                self._payload_types.setdefault(codec.name, payload_type)
            elif isinstance(repaired := codec.parameters.get("apt"), int):
                rtx_for[repaired] = payload_type
        self._rtx_payload_types = {pt: rtx_for[pt] for pt in self._payload_types.values()
                                   if pt in rtx_for}
        self._started = time.monotonic()
        if self._first and self.source.kind == "video":
            self.source.request_keyframe()

    def forward(self, codec_name: str, marker: int, sequence_number: int, timestamp: int,
                ssrc: int, abs_send_time: bytes | None, audio_level: int | None,
                payload: bytes) -> None:
        """Called per packet and subscriber, synchronously from the socket's read
        callback (see hooks.RtpInput)."""
        payload_type = self._payload_types.get(codec_name)
        if payload_type is None:
            if self._payload_types:
                self._without_codec += 1
            else:
                self._unconfigured += 1
            return
        if self._first:
            if needs_keyframe_gate(codec_name) and not is_vp8_keyframe_start(payload):
                self._before_keyframe += 1
                return
            self._first = False
            self.first_packet_after = time.monotonic() - self._started
        if ssrc != self._in_ssrc:
            self._rebase(ssrc, sequence_number, timestamp)
        sequence_number = (sequence_number + self._seq_offset) & 0xFFFF
        timestamp = (timestamp + self._ts_offset) & 0xFFFFFFFF
        data = self._packet(marker, payload_type, sequence_number, timestamp,
                            abs_send_time, audio_level, payload)
        self._history[sequence_number % HISTORY_SIZE] = data
        self._last_seq = sequence_number
        self._last_ts = timestamp
        self._last_time = time.monotonic()
        self.packets_sent += 1
        self._octets += len(payload)
        assert self._output is not None  # set with the payload types in _configure
        self._output.send_rtp(data)

    def repair(self, codec_name: str, marker: int, sequence_number: int, timestamp: int,
               ssrc: int, abs_send_time: bytes | None, audio_level: int | None,
               payload: bytes) -> None:
        """A packet the publisher sent again: passed on only if it belongs in this
        subscriber's stream (same incoming SSRC, not before its first packet, within
        the history) and is missing from it. The relay's own NACK and any subscriber's
        bring the same repair to every forward; the others have the packet already,
        and one who joined after it never had a place for it."""
        payload_type = self._payload_types.get(codec_name)
        if (payload_type is None or self._first or ssrc != self._in_ssrc
                or self._output is None or self._last_seq is None):
            return
        sequence_number = (sequence_number + self._seq_offset) & 0xFFFF
        if ((sequence_number - self._first_seq) & 0xFFFF >= 0x8000
                or (self._last_seq - sequence_number) & 0xFFFF >= HISTORY_SIZE
                or self._kept(sequence_number) is not None):
            return
        timestamp = (timestamp + self._ts_offset) & 0xFFFFFFFF
        data = self._packet(marker, payload_type, sequence_number, timestamp,
                            abs_send_time, audio_level, payload)
        self._history[sequence_number % HISTORY_SIZE] = data
        self._resend(sequence_number, data)

    def _packet(self, marker: int, payload_type: int, sequence_number: int, timestamp: int,
                abs_send_time: bytes | None, audio_level: int | None, payload: bytes) -> bytes:
        if self._writer is not None:
            return self._writer.write(marker, payload_type, sequence_number, timestamp,
                                      self._ssrc, abs_send_time, audio_level) + payload
        return self._serialize(marker, payload_type, sequence_number, timestamp,
                               abs_send_time, audio_level, payload)

    def _kept(self, sequence_number: int) -> bytes | None:
        kept = self._history[sequence_number % HISTORY_SIZE]
        if kept is None or int.from_bytes(kept[2:4], "big") != sequence_number:
            return None
        return kept

    def _resend(self, sequence_number: int, data: bytes) -> None:
        """A packet of the history again, as RTX when the subscriber negotiated it."""
        self._resent_at[sequence_number % HISTORY_SIZE] = time.monotonic()
        packet = RtpPacket.parse(data, self._extensions)
        rtx_payload_type = self._rtx_payload_types.get(packet.payload_type)
        if rtx_payload_type is not None:
            packet = wrap_rtx(packet, payload_type=rtx_payload_type,
                              sequence_number=self._rtx_sequence, ssrc=self._rtx_ssrc)
            self._rtx_sequence = (self._rtx_sequence + 1) & 0xFFFF
        self.retransmitted += 1
        assert self._output is not None  # both callers return earlier without one
        self._output.send_rtp(packet.serialize(self._extensions))

    def _serialize(self, marker: int, payload_type: int, sequence_number: int,
                   timestamp: int, abs_send_time: bytes | None, audio_level: int | None,
                   payload: bytes) -> bytes:
        """aiortc's own serializer, for extension IDs HeaderWriter cannot write."""
        out = RtpPacket(payload_type=payload_type, marker=marker,
                        sequence_number=sequence_number, timestamp=timestamp,
                        ssrc=self._ssrc, payload=payload)
        out.extensions.mid = self._mid
        if abs_send_time is not None:
            out.extensions.abs_send_time = int.from_bytes(abs_send_time, "big")
        if audio_level is not None:
            out.extensions.audio_level = (bool(audio_level & 0x80), audio_level & 0x7F)
        return out.serialize(self._extensions)

    def _rebase(self, ssrc: int, sequence_number: int, timestamp: int) -> None:
        """Continue this subscriber's sequence and clock across a new incoming SSRC."""
        if self._last_seq is None:
            start_seq = self._ssrc & 0x7FFF  # low half avoids SRTP rollover trouble
            start_ts = self._ssrc
        else:
            elapsed = time.monotonic() - self._last_time
            start_seq = self._last_seq + 1
            start_ts = self._last_ts + max(1, int(elapsed * self.source.clock_rate))
        self._in_ssrc = ssrc
        self._first_seq = start_seq & 0xFFFF
        self._seq_offset = (start_seq - sequence_number) & 0xFFFF
        self._ts_offset = (start_ts - timestamp) & 0xFFFFFFFF

    async def handle_rtcp(self, packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            self._answer_nack(packet.lost)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI,
                                                                    RTCP_PSFB_FIR):
            self.source.request_keyframe()
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return
            if self._ssrc in ssrcs:
                self.bitrate = bitrate
                self.source.update_bitrate()

    def _answer_nack(self, lost: list[int]) -> None:
        if self._output is None:
            return
        missing_upstream = []
        now = time.monotonic()
        for seq in lost:
            kept = self._kept(seq)
            if kept is None:
                missing_upstream.append((seq - self._seq_offset) & 0xFFFF)
            elif now - self._resent_at[seq % HISTORY_SIZE] >= RESEND_GUARD:
                self._resend(seq, kept)
        if missing_upstream:
            # The repair comes back through Source to repair(), for this subscriber
            # and any other that misses the packet too.
            self.source.request_retransmission(missing_upstream)

    def _rewrite_sr(self, report: RtcpSrPacket) -> bool:
        """Give the subscriber the publisher's wall-clock mapping in its timestamps.

        Without a sender report from the publisher there is no true mapping, and
        a made-up one would be worse than none for lip sync.
        """
        mapping = self.source.clock_mapping
        if mapping is None or self._in_ssrc is None:
            return False
        ntp, rtp_timestamp = mapping
        info = report.sender_info
        info.ntp_timestamp = ntp
        info.rtp_timestamp = (rtp_timestamp + self._ts_offset) & 0xFFFFFFFF
        info.packet_count = self.packets_sent & 0xFFFFFFFF
        info.octet_count = self._octets & 0xFFFFFFFF
        return True
