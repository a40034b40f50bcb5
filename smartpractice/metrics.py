"""What /metrics reports, in Prometheus' text format (prometheus-client), for this
instance. Labels hold routes, statuses and kinds only, never a person, practice or path."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

# Pages answer in milliseconds, a login's password hash takes about a second.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Why the relay did not forward a packet (rtc/relay.py Relay.statistics).
DROP_REASONS = ("malformed", "not_connected", "codec", "keyframe_wait")


class _JobRuns(Collector):
    """The job runner counts its runs itself (jobs/runner.py); this reads the count."""

    def __init__(self) -> None:
        self.runs: Mapping[str, int] = {}

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("smartpractice_job_runs", "Completed runs of each job on this instance", labels=["job"])
        for job, count in sorted(self.runs.items()):
            family.add_metric([job], count)
        yield family


# The relay's counts (rtc/relay.py Relay.statistics), each a gauge named
# smartpractice_relay_<its key>.
RELAY_COUNTS = {
    "rooms": "Calls the relay forwards",
    "connections": "Peer connections the relay holds (each relayed participant has two)",
    "packets_received": "RTP packets the relay received on the streams it holds now",
    "packets_sent": "RTP packets the relay forwarded to subscribers on the streams it holds now",
    "repairs_received": "Packets publishers sent the relay again (RTX) on the streams it holds now",
    "packets_resent": "Packets the relay sent subscribers again (NACK answers, repairs) on the streams it holds now",
    "keyframe_requests": "Keyframe requests (PLI) the relay sent publishers on the streams it holds now",
    "bytes_received": "RTP payload bytes the relay received on the streams it holds now",
    "bytes_sent": "RTP payload bytes the relay forwarded to subscribers on the streams it holds now",
}


class RelayGauges:
    """The relay's figures (rtc/relay.py Relay.statistics), under the same names on a web
    instance's /metrics and on a relay worker's."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.counts = {key: Gauge(f"smartpractice_relay_{key}", text, registry=registry)
                       for key, text in RELAY_COUNTS.items()}
        self.streams = Gauge("smartpractice_relay_streams", "Streams published to the relay, by kind", ["kind"],
                             registry=registry)
        self.dropped = Gauge("smartpractice_relay_packets_dropped",
                             "Packets the relay did not forward, per subscriber, on the streams it holds now, "
                             "by reason", ["reason"], registry=registry)

    def take_snapshot(self, relay: Mapping[str, int]) -> None:
        for key, gauge in self.counts.items():
            gauge.set(relay.get(key, 0))
        for kind in ("audio", "video"):
            self.streams.labels(kind).set(relay.get(f"{kind}_streams", 0))
        for reason in DROP_REASONS:
            self.dropped.labels(reason).set(relay.get(f"dropped_{reason}", 0))


class WorkerMetrics:
    """What a relay worker's /metrics reports (`smartpractice relay-worker --metrics-port`)."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.relay = RelayGauges(registry)  # its calls are smartpractice_relay_rooms
        self.draining = Gauge("smartpractice_relay_worker_draining",
                              "1 while this relay worker drains (it takes no new calls), else 0", registry=registry)
        # As its lease reports them at each renewal (rooms/relay_lease.py), so that the graph
        # shows what placement saw.
        self.full = Gauge("smartpractice_relay_worker_full",
                          "1 while this relay worker reports itself full (new calls go to other workers), else 0",
                          registry=registry)
        self.loop_lag = Gauge("smartpractice_relay_worker_loop_lag_seconds",
                              "How late this relay worker's event loop ran, at most, over its last lease renewal",
                              registry=registry)
        self.cpu = Gauge("smartpractice_relay_worker_cpu_ratio",
                         "This relay worker's share of one core over its last lease renewal", registry=registry)

    def take_snapshot(self, *, relay: Mapping[str, int], draining: bool, full: bool, loop_lag: float,
                      cpu: float) -> None:
        self.relay.take_snapshot(relay)
        self.draining.set(int(draining))
        self.full.set(int(full))
        self.loop_lag.set(loop_lag)
        self.cpu.set(cpu)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class Metrics:
    def __init__(self) -> None:
        # A registry of its own: no module-level state, and one app's figures never mix with another's.
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("smartpractice_http_requests", "HTTP requests answered, by route name and status",
                                ["route", "method", "status"], registry=registry)
        self.latency = Histogram("smartpractice_http_request_duration_seconds", "Time to answer a request, by route name",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=registry)
        self.logins = Counter("smartpractice_logins", "Login attempts by kind (password, tan) and outcome (ok, refused)",
                              ["kind", "outcome"], registry=registry)
        self.open_sockets = Gauge("smartpractice_open_sockets", "Open WebSockets on this instance, by kind",
                                  ["kind"], registry=registry)
        self.calls = Gauge("smartpractice_calls", "Calls with a participant on this instance, by topology",
                           ["topology"], registry=registry)
        self.relay = RelayGauges(registry)
        self.mails = Gauge("smartpractice_mails", "Mails in the outbox, by status (shared by all instances)",
                           ["status"], registry=registry)
        self._job_runs = _JobRuns()
        registry.register(self._job_runs)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def take_snapshot(self, *, sockets: Mapping[str, int], calls: Mapping[str, int], relay: Mapping[str, int],
                      mails: Mapping[str, int], job_runs: Mapping[str, int]) -> None:
        """Gauges are set from what is true at the scrape, so none can drift from the state."""
        for kind in ("waiting_patient", "waiting_staff", "call"):
            self.open_sockets.labels(kind).set(sockets.get(kind, 0))
        for topology in ("p2p", "relay"):
            self.calls.labels(topology).set(calls.get(topology, 0))
        self.relay.take_snapshot(relay)
        for status in ("pending", "sending", "sent", "failed", "uncertain"):
            self.mails.labels(status).set(mails.get(status, 0))
        self._job_runs.runs = dict(job_runs)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
