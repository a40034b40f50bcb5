"""The relay's compiled datagram path (rtc/_datagrams.c) joined to the libsrtp that
pylibsrtp ships: the C code calls srtp_protect and srtp_unprotect through their
addresses and a session's srtp_t, both read from pylibsrtp's cffi binding (private;
guard.py checks them by protecting and unprotecting a packet both ways)."""

from __future__ import annotations

import socket

import pylibsrtp
from pylibsrtp._binding import ffi, lib

from .. import _datagrams

receive = _datagrams.receive
send_rtp = _datagrams.send_rtp
send_rtp_frame = _datagrams.send_rtp_frame
count_rtp = _datagrams.count_rtp
count_rtp_ready = _datagrams.count_rtp_ready
sockaddr = _datagrams.sockaddr


def _address(pointer: object) -> int:
    return int(ffi.cast("uintptr_t", pointer))


_datagrams.set_srtp_functions(_address(ffi.addressof(lib, "srtp_protect")),
                              _address(ffi.addressof(lib, "srtp_unprotect")))


def session_address(session: pylibsrtp.Session | None) -> int:
    """The srtp_t of a session, 0 for none; valid while the session object lives."""
    return 0 if session is None else _address(session._srtp[0])


def problems() -> list[str]:
    """What guard.py reports: a packet protected here must unprotect in pylibsrtp, and
    the other way round, over a real socket pair on the loopback interface."""
    key = bytes(range(30))  # AES_CM_128_HMAC_SHA1_80: 16 bytes of key, 14 of salt
    packet = bytes([0x80, 96, 0, 1, 0, 0, 0, 1, 0x5E, 0xC0, 0, 1]) + b"opaque payload"
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        b.setblocking(False)
        ours, theirs = _session(key, outbound=True), _session(key, outbound=False)
        try:
            unsent = send_rtp(a.fileno(), session_address(ours), packet,
                              sockaddr(*b.getsockname()))
            received = receive(b.fileno(), 0)
            works = (unsent is None and len(received) == 1 and isinstance(received[0], bytes)
                     and theirs.unprotect(received[0]) == packet)
        except (ValueError, OSError, pylibsrtp.Error):
            works = False
        if not works:
            found.append("a packet protected through hooks/srtp.py does not unprotect in "
                         "pylibsrtp (srtp_protect's address or Session._srtp changed)")
        ours, theirs = _session(key, outbound=False), _session(key, outbound=True)
        a.sendto(theirs.protect(packet), b.getsockname())
        if receive(b.fileno(), session_address(ours)) != [packet]:
            found.append("a packet protected by pylibsrtp does not unprotect through "
                         "hooks/srtp.py (srtp_unprotect's address or Session._srtp changed)")
    return found


def _session(key: bytes, *, outbound: bool) -> pylibsrtp.Session:
    kind = pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
    return pylibsrtp.Session(policy=pylibsrtp.Policy(key=key, ssrc_type=kind))
