"""The call page's JavaScript modules, tested with node's own test runner (tests/js/), no
browser needed: the signalling client against a fake socket and fake timers, and which module
may touch the page or make connections, senders and receivers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_call_page_modules_pass_their_node_tests():
    node = shutil.which("node")
    assert node, "node is needed for tests/js/ (Debian: apt-get install nodejs)"
    # Named one by one: node 20 takes a directory, later versions take only files and globs.
    files = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "tests" / "js").glob("*.test.mjs"))
    assert files, "no tests in tests/js/"
    result = subprocess.run(
        [node, "--test", *files], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"node --test {' '.join(files)} failed:\n{result.stdout}\n{result.stderr}"
