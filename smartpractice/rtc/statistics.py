"""What the relay tracks of an incoming stream: the figures of its receiver
reports (RFC 3550 appendix A.3 and A.8) and the sequence numbers to NACK.

It does what aiortc's StreamStatistics and NackGenerator do together, from
plain integers: those take an RtpPacket, which the relay no longer builds.
"""

from __future__ import annotations

from collections import deque

from aiortc.rtp import RTP_HISTORY_SIZE, clamp_packets_lost


class IncomingStream:
    def __init__(self, clock_rate: int, *, track_losses: bool) -> None:
        self.base_seq = 0  # meaningful once max_seq is set
        self.max_seq: int | None = None  # None until the first packet
        self.cycles = 0
        self.packets_received = 0
        # Missing sequence numbers within the last RTP_HISTORY_SIZE, or None
        # when losses are not repaired (audio).
        self.missing: set[int] | None = set() if track_losses else None
        # The same sequence numbers in the order they went missing, which is also the
        # order they expire in: pruning looks at the oldest only. Scanning the whole set
        # per packet (as aiortc does) cost most of the relay's time once losses began.
        self._missing_order: deque[int] = deque()
        self._clock_rate = clock_rate
        self._jitter_q4 = 0
        self._last_arrival = 0
        self._last_timestamp = 0  # read only after the first packet set it
        self._expected_prior = 0
        self._received_prior = 0

    def add(self, sequence_number: int, timestamp: int, now: float) -> bool:
        """Count a packet that arrived at ``now`` (wall clock, seconds); True when
        it revealed new losses."""
        self.packets_received += 1
        max_seq = self.max_seq
        if max_seq is None:
            self.base_seq = self.max_seq = sequence_number
            self._last_arrival = int(now * self._clock_rate)
            self._last_timestamp = timestamp
            return False
        ahead = (sequence_number - max_seq) & 0xFFFF
        missing = self.missing
        if not 0 < ahead < 0x8000:  # late, retransmitted or duplicate
            if missing:
                missing.discard(sequence_number)
            return False
        if sequence_number < max_seq:
            self.cycles += 1 << 16
        self.max_seq = sequence_number
        arrival = int(now * self._clock_rate)
        if timestamp != self._last_timestamp:
            difference = abs((arrival - self._last_arrival) - (timestamp - self._last_timestamp))
            self._jitter_q4 += difference - ((self._jitter_q4 + 8) >> 4)
        self._last_arrival = arrival
        self._last_timestamp = timestamp
        if missing is None:
            return False
        order = self._missing_order
        # Older than the history is beyond repair; NACKs would only grow.
        while order and (sequence_number - order[0]) & 0xFFFF > RTP_HISTORY_SIZE:
            missing.discard(order.popleft())
        if ahead == 1:
            return False
        skipped = [(max_seq + n) & 0xFFFF
                   for n in range(max(1, ahead - RTP_HISTORY_SIZE), ahead)]
        missing.update(skipped)
        order.extend(skipped)
        return True

    def fraction_lost(self) -> int:
        """Since the previous call, as RFC 3550 section 6.4.1 reports it."""
        expected = self.packets_expected
        expected_interval = expected - self._expected_prior
        received_interval = self.packets_received - self._received_prior
        self._expected_prior, self._received_prior = expected, self.packets_received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            return 0
        return (lost_interval << 8) // expected_interval

    @property
    def jitter(self) -> int:
        return self._jitter_q4 >> 4

    @property
    def packets_expected(self) -> int:
        if self.max_seq is None:
            return 0
        return self.cycles + self.max_seq - self.base_seq + 1

    @property
    def packets_lost(self) -> int:
        return clamp_packets_lost(self.packets_expected - self.packets_received)
