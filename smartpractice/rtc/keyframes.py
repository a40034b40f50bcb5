"""Keyframe detection from the unencrypted leading bytes of an RTP payload.

Only the VP8 payload descriptor (RFC 7741 section 4.2) and the first byte of the
VP8 payload header are read. Senders that encrypt frames end to end (WebRTC
Encoded Transform) leave those bytes in the clear, so this works on opaque
payloads too.
"""

from __future__ import annotations


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
