"""The relay benchmark's load generator (benchmarks/relay.py) sends and counts media in C
(rtc/_datagrams.c: send_rtp_frame, count_rtp): what a relay receives from it must be the
packets a browser sends, and what its subscribers count must be what arrived, or the
benchmark's figures mean nothing."""

from __future__ import annotations

import array
import select
import socket

import pylibsrtp
import pytest

from smartpractice.rtc.hooks import srtp

KEY = bytes(range(30))  # AES_CM_128_HMAC_SHA1_80: 16 bytes of key, 14 of salt
# V=2, X=1, PT 96, sequence and marker set per packet, timestamp 7, SSRC 1, one extension
HEADER = bytes([0x90, 96, 0, 0, 0, 0, 0, 7, 0, 0, 0, 1, 0xBE, 0xDE, 0, 1, 0x10, 0xAA, 0, 0])


def _session(*, outbound: bool) -> pylibsrtp.Session:
    kind = pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
    return pylibsrtp.Session(policy=pylibsrtp.Policy(key=KEY, ssrc_type=kind))


@pytest.fixture
def sockets():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        sender.bind(("127.0.0.1", 0))
        receiver.bind(("127.0.0.1", 0))
        receiver.setblocking(False)
        yield sender, receiver


def _waiting(receiver: socket.socket) -> list[bytes]:
    datagrams = []
    while True:
        try:
            datagrams.append(receiver.recv(4096))
        except BlockingIOError:
            return datagrams


@pytest.mark.parametrize("segment", [True, False], ids=["gso", "sendmmsg"])
def test_a_frame_arrives_as_one_srtp_packet_per_payload(sockets, segment: bool):
    """A keyframe-sized frame (more packets than one batch) and the sequence numbers
    wrapping: every payload one datagram, in order, the marker bit on the last only."""
    sender, receiver = sockets
    ours, theirs = _session(outbound=True), _session(outbound=False)
    payloads = [bytes([i]) * 1200 for i in range(40)] + [b"the short last one"]
    unsent = srtp.send_rtp_frame(sender.fileno(), srtp.session_address(ours),
                                 srtp.sockaddr(*receiver.getsockname()), HEADER, payloads,
                                 65530, segment)
    packets = [theirs.unprotect(datagram) for datagram in _waiting(receiver)]
    assert unsent == 0
    assert [packet[len(HEADER):] for packet in packets] == payloads
    assert [(packet[2] << 8) | packet[3] for packet in packets] == [
        (65530 + i) & 0xFFFF for i in range(len(payloads))]
    assert [packet[1] >> 7 for packet in packets] == [0] * 40 + [1]
    assert {packet[4:len(HEADER)] for packet in packets} == {HEADER[4:]}


def test_subscribers_count_packets_frames_and_the_highest_sequence(sockets):
    """Across a sequence wrap and with a reordered packet; anything not RTP (here a
    STUN-like datagram) is handed back with its sender's address."""
    sender, receiver = sockets
    ours = _session(outbound=True)
    address = srtp.sockaddr(*receiver.getsockname())
    for sequence in (65534, 2):  # frames of three and two packets: 65534..0, 2..3
        srtp.send_rtp_frame(sender.fileno(), srtp.session_address(ours), address, HEADER,
                            [b"x"] * (3 if sequence == 65534 else 2), sequence, True)
    late = bytearray(HEADER + b"late")
    late[2:4] = (1).to_bytes(2, "big")  # sequence 1, after 2 and 3
    assert srtp.send_rtp(sender.fileno(), srtp.session_address(ours), bytes(late),
                         address) is None
    sender.sendto(b"\x00\x01 not RTP", receiver.getsockname())
    counts = array.array("q", [0, 0, -1])
    others = srtp.count_rtp(receiver.fileno(), counts)
    assert others == [(b"\x00\x01 not RTP", sender.getsockname())]
    assert list(counts) == [6, 2, 65534 + 5]  # extended: 3 after the wrap
    assert srtp.count_rtp(receiver.fileno(), counts) is None
    assert list(counts) == [6, 2, 65534 + 5]


def test_every_ready_subscriber_socket_is_counted_in_one_call(sockets):
    """count_rtp_ready reads each socket of an epoll set that has datagrams waiting into
    its own counts, and hands back the rest with the socket it came on."""
    sender, first = sockets
    ours = _session(outbound=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as second, select.epoll() as epoll:
        second.bind(("127.0.0.1", 0))
        second.setblocking(False)
        counts: list[array.array | None] = [None] * (max(first.fileno(), second.fileno()) + 1)
        for receiver in (first, second):
            epoll.register(receiver.fileno(), select.EPOLLIN)
            counts[receiver.fileno()] = array.array("q", [0, 0, -1])
        srtp.send_rtp_frame(sender.fileno(), srtp.session_address(ours),
                            srtp.sockaddr(*first.getsockname()), HEADER, [b"x"] * 4, 10, True)
        srtp.send_rtp_frame(sender.fileno(), srtp.session_address(ours),
                            srtp.sockaddr(*second.getsockname()), HEADER, [b"y"] * 2, 20, True)
        sender.sendto(b"\x00\x01 not RTP", second.getsockname())
        others = srtp.count_rtp_ready(epoll.fileno(), counts)
        assert others == [(second.fileno(), b"\x00\x01 not RTP", sender.getsockname())]
        assert list(counts[first.fileno()]) == [4, 1, 13]
        assert list(counts[second.fileno()]) == [2, 1, 21]
        assert srtp.count_rtp_ready(epoll.fileno(), counts) is None


def test_the_relay_path_drops_cut_datagrams_and_refuses_to_send_without_a_session(sockets):
    """What the relay's reader hands on (receive) is never a datagram cut to its buffer:
    SRTP, STUN and DTLS could only fail on it. Sending without SRTP keys is an error, not a
    null pointer followed into libsrtp."""
    sender, receiver = sockets
    address = srtp.sockaddr(*receiver.getsockname())
    sender.sendto(HEADER + bytes(3000), receiver.getsockname())
    sender.sendto(HEADER + b"whole", receiver.getsockname())
    assert srtp.receive(receiver.fileno(), 0) == [HEADER + b"whole"]
    with pytest.raises(ValueError, match="no SRTP session"):
        srtp.send_rtp(sender.fileno(), 0, HEADER + b"x", address)
    with pytest.raises(ValueError, match="no SRTP session"):
        srtp.send_rtp_frame(sender.fileno(), 0, address, HEADER, [b"x"], 1, True)
    assert _waiting(receiver) == []
