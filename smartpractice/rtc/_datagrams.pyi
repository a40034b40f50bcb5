# The types of the compiled module _datagrams.c, which mypy cannot read.

from collections.abc import Sequence

from _typeshed import WriteableBuffer

_Address = tuple[str, int] | tuple[str, int, int, int]  # IPv4, or IPv6 with flow and scope

def set_srtp_functions(protect: int, unprotect: int, /) -> None: ...

# SRTP packets as bytes (decrypted when session is not 0); anything else with its address.
def receive(fd: int, session: int, /) -> list[bytes | tuple[bytes, _Address]]: ...

# None when the socket took the packet, else the protected packet to send the slow way.
def send_rtp(fd: int, session: int, packet: bytes, address: bytes, /) -> bytes | None: ...

# For the relay benchmark's load generator: one frame's packets (header with extensions,
# sequence numbers from `sequence`, the marker bit on the last) protected and sent with
# sendmmsg; how many the socket did not take.
def send_rtp_frame(fd: int, session: int, address: bytes, header: bytes,
                   payloads: Sequence[bytes], sequence: int, segment: bool, /) -> int: ...

# For its subscribers: SRTP packets counted into counts (packets, marker bits, highest
# extended sequence number or -1; three int64), the rest returned as receive() does.
def count_rtp(fd: int, counts: WriteableBuffer, /) -> list[tuple[bytes, _Address]] | None: ...

# The same for every socket of the epoll set epfd with datagrams waiting, into
# counts_by_fd[fd]; the rest as (fd, bytes, address).
def count_rtp_ready(epfd: int, counts_by_fd: Sequence[WriteableBuffer | None], /
                    ) -> list[tuple[int, bytes, _Address]] | None: ...

def sockaddr(host: str, port: int, /) -> bytes: ...
