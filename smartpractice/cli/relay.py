"""`smartpractice relay-worker`: one relay process, of as many as there are cores
(docs/deployment.md, "Relay workers")."""

from __future__ import annotations

import asyncio
import faulthandler
import signal
import socket

import click
from aiohttp import web

from smartpractice import logs
from smartpractice.cli import _settings, main
from smartpractice.clock import Clock
from smartpractice.metrics import WorkerMetrics
from smartpractice.rooms import redis_state, relay_lease
from smartpractice.rooms.ice import IceServers
from smartpractice.rooms.relay_worker import RelayWorker
from smartpractice.services import relay_for
from smartpractice.web.metrics import worker_metrics_app


@main.command("relay-worker")
@click.option("--ports", help="This worker's UDP ports, FIRST-LAST (default: SMARTPRACTICE_RELAY_PORTS); "
                              "give each worker on a machine a range of its own.")
@click.option("--metrics-port", help="TCP port of this worker's /metrics (default: SMARTPRACTICE_RELAY_METRICS_PORT); "
                                     "give each worker on a machine a port of its own.")
def relay_worker(ports: str | None, metrics_port: str | None) -> None:
    """Run a relay worker: forwards the media of the relayed calls placed on it.
    Needs SMARTPRACTICE_REDIS_URL; the web instances use it with SMARTPRACTICE_RELAY_WORKERS=yes.
    Stops on SIGTERM after moving its calls elsewhere (within SMARTPRACTICE_STOP_SECONDS)."""
    settings = _settings(**({"RELAY_PORTS": ports} if ports else {}),
                         **({"RELAY_METRICS_PORT": metrics_port} if metrics_port else {}))
    if not settings.redis_url:
        raise click.ClickException("A relay worker needs SMARTPRACTICE_REDIS_URL: it registers there.")
    if settings.relay_metrics_port and not settings.metrics_token:
        raise click.ClickException("A relay worker's metrics need SMARTPRACTICE_METRICS_TOKEN: Prometheus sends it, "
                                   "as to the web instances' /metrics.")
    logs.configure(settings.log_level, settings.log_format)
    # A crash in the C forwarding path (rtc/_datagrams.c) leaves where it happened in the log.
    faulthandler.enable()
    asyncio.run(_serve(settings))


async def _serve(settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    client = redis_state.connect(settings.redis_url)
    lease_client = relay_lease.connect(settings.redis_url)
    relay = relay_for(settings, IceServers(settings=settings, clock=Clock()))
    ports = f"{settings.relay_ports.start}-{settings.relay_ports.stop - 1}" if settings.relay_ports else ""
    worker = RelayWorker(client, relay, lease_redis=lease_client, prefix=settings.redis_prefix,
                         address=settings.relay_public_address or socket.gethostname(), ports=ports)
    runner = None
    if settings.relay_metrics_port:
        figures = WorkerMetrics()

        def exposition() -> bytes:
            stress = worker.stress
            figures.take_snapshot(relay=relay.statistics(), draining=worker.draining, full=stress.full,
                                  loop_lag=stress.lag_seconds, cpu=stress.cpu)
            return figures.exposition()

        runner = web.AppRunner(worker_metrics_app(settings.metrics_token, exposition), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, port=settings.relay_metrics_port).start()
    try:
        await worker.run(stop, stop_seconds=settings.stop_seconds)
    finally:
        if runner is not None:
            await runner.cleanup()
        await client.aclose()
        lease_client.close()
