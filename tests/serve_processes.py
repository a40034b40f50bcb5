"""`smartpractice serve` as an operator runs it: a process of its own on the test database,
for the tests of stopping (SIGTERM) and of instances that share or refuse a database."""

from __future__ import annotations

import asyncio
import os
import sys
from asyncio.subprocess import Process
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import unused_port


@pytest.fixture
async def start_server(tmp_path, cli_env):
    """Starts `python -m smartpractice serve` on a free port, its log in `<name>.log`, with
    SMARTPRACTICE_<KEY> set from the keywords; returns (process, base URL, log path). Each
    one the test leaves running is killed."""
    processes: list[Process] = []

    async def start(name: str, **settings: str) -> tuple[Process, str, Path]:
        port = unused_port()
        log_path = tmp_path / f"{name}.log"
        env = {**os.environ, **cli_env, "SMARTPRACTICE_BASE_URL": f"http://127.0.0.1:{port}",
               "SMARTPRACTICE_PURGE_INTERVAL_MINUTES": "0", "SMARTPRACTICE_HOUSEKEEPING_SECONDS": "0",
               **{f"SMARTPRACTICE_{key}": value for key, value in settings.items()}}
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "smartpractice", "serve", "--host", "127.0.0.1", "--port", str(port),
                env=env, stdout=log, stderr=log)
        processes.append(process)
        return process, f"http://127.0.0.1:{port}", log_path

    yield start
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def until_ready(process: Process, base: str, log_path: Path, within: float = 40) -> None:
    """Until /readyz answers 200; the log if the process ends first."""
    async with aiohttp.ClientSession() as probe:
        async with asyncio.timeout(within):
            while True:
                try:
                    async with probe.get(base + "/readyz") as answer:
                        if answer.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                if process.returncode is not None:
                    pytest.fail(await asyncio.to_thread(log_path.read_text))
                await asyncio.sleep(0.2)
