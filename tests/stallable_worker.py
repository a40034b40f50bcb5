"""`smartpractice relay-worker` exactly as it runs, whose event loop a test can stall from
outside while the process lives: SIGUSR1 keeps it busy for STALL_BUSY_SECONDS in turns of
STALL_TURN_SECONDS of pure Python work (a worker past its ceiling, where one turn of the
loop drains hundreds of sockets), SIGUSR2 blocks it for good (a hung worker: a call that
never returns, while its other threads run on). Run as a script with the command's
options: python tests/stallable_worker.py --ports 41200-41299"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

from smartpractice.cli import main


def busy(signum: int, frame: object) -> None:
    # A Python signal handler runs in the main thread, inside the loop's run.
    loop = asyncio.get_running_loop()
    until = time.monotonic() + float(os.environ.get("STALL_BUSY_SECONDS", "10"))
    turn_seconds = float(os.environ.get("STALL_TURN_SECONDS", "1.5"))

    def turn() -> None:
        end = min(time.monotonic() + turn_seconds, until)
        while time.monotonic() < end:  # holds the GIL but for the interpreter's switches
            pass
        if time.monotonic() < until:
            loop.call_soon(turn)

    loop.call_soon(turn)


def hang(signum: int, frame: object) -> None:
    time.sleep(3600)


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, busy)
    signal.signal(signal.SIGUSR2, hang)
    main(["relay-worker", *sys.argv[1:]], prog_name="smartpractice")
