"""A deployment in processes, for the tests of several instances: `smartpractice serve`
and `smartpractice relay-worker` as real processes on one database and one Redis key
prefix, and a small proxy in front of the web instances that sends each browser to its
instance (by a lane named in its User-Agent) and, when that instance refuses
connections, to the other one, as a load balancer does."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

import aiohttp
from aiohttp.test_utils import unused_port

from smartpractice.rooms import relay_registry as registry
from tests.redis_rooms import REDIS_URL, keys_under

STOP_SECONDS = 4


class Cluster:
    def __init__(self, tmp_path: Path, cli_env: dict[str, str], prefix: str) -> None:
        self.prefix = prefix
        self.proxy = LaneProxy()
        self.base = f"http://127.0.0.1:{self.proxy.port}"
        self._tmp = tmp_path
        self.env = {**os.environ, **cli_env, "SMARTPRACTICE_BASE_URL": self.base,
                    "SMARTPRACTICE_REDIS_URL": REDIS_URL, "SMARTPRACTICE_REDIS_PREFIX": prefix,
                    "SMARTPRACTICE_RELAY_WORKERS": "yes", "SMARTPRACTICE_STOP_SECONDS": str(STOP_SECONDS),
                    "SMARTPRACTICE_PURGE_INTERVAL_MINUTES": "0", "SMARTPRACTICE_HOUSEKEEPING_SECONDS": "0"}
        self.web: dict[str, asyncio.subprocess.Process] = {}
        self.workers: list[asyncio.subprocess.Process] = []
        self.logs: list[Path] = []

    async def start_web(self, lane: str, port: int | None = None) -> None:
        port = port or self.proxy.backends.get(lane) or unused_port()
        self.web[lane] = await self._spawn(f"serve-{lane}", "serve", "--host", "127.0.0.1", "--port", str(port))
        self.proxy.backends[lane] = port
        async with aiohttp.ClientSession() as probe, asyncio.timeout(60):
            while True:
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    if (await probe.get(f"http://127.0.0.1:{port}/readyz")).status == 200:
                        return
                assert self.web[lane].returncode is None, self.log_text()
                await asyncio.sleep(0.2)

    async def start_worker(self, ports: str) -> None:
        before = await self.worker_ids()
        self.workers.append(await self._spawn(f"worker-{len(self.workers)}", "relay-worker", "--ports", ports))
        async with asyncio.timeout(30):
            while len(await self.worker_ids()) == len(before):  # noqa: ASYNC110 - it registers in Redis
                await asyncio.sleep(0.1)

    async def worker_ids(self) -> set[str]:
        lease = f"{self.prefix}:worker:"
        return {key[len(lease):] for key in await keys_under(self.prefix)
                if key.startswith(lease) and key.count(":") == 2}

    async def _spawn(self, name: str, *args: str) -> asyncio.subprocess.Process:
        path = self._tmp / f"{name}-{len(self.logs)}.log"
        self.logs.append(path)
        with path.open("wb") as log:
            return await asyncio.create_subprocess_exec(sys.executable, "-m", "smartpractice", *args,
                                                        env=self.env, stdout=log, stderr=log)

    def log_text(self) -> str:
        return "\n".join(f"== {path.name}\n{path.read_text()}" for path in self.logs)

    async def placement(self, client, call: int) -> str | None:  # noqa: ANN001 - a redis client
        found = await client.get(registry.key(self.prefix, "placement", call))
        return found and found.decode()

    async def stop(self) -> None:
        await self.proxy.close()
        for process in (*self.web.values(), *self.workers):
            if process.returncode is None:
                process.kill()
                await process.wait()


class LaneProxy:
    """Each connection goes to the backend of the lane its first request names in its
    User-Agent ("lane-a"); a backend that refuses sends it to the other lanes'."""

    def __init__(self) -> None:
        self.port = unused_port()
        self.backends: dict[str, int] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lanes = sorted(self.backends, key=lambda lane: f"lane-{lane}".encode() not in head.lower())
            for lane in lanes:
                try:
                    upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.backends[lane])
                    break
                except OSError:
                    continue
            else:
                return
            upstream_writer.write(head)
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()
