"""The built wheel is the whole service: templates, static files, catalogs and migrations
inside the package, so that `pip install smartpractice-….whl` serves pages without the
source tree (and the Dockerfile needs no editable install)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import unused_port

from tests.helpers import OPERATOR

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the tracked files, as CI's clean checkout would."""
    source = tmp_path_factory.mktemp("source")
    git = shutil.which("git")
    assert git, "git is needed to list the tracked files"
    tracked = subprocess.run([git, "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).exists() or (ROOT / name).is_symlink():
            shutil.copy2(ROOT / name, target, follow_symlinks=False)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
                   check=True, capture_output=True, timeout=300)
    [built] = out.glob("smartpractice-*.whl")
    return built


def test_the_wheel_carries_every_template_static_file_catalog_and_migration(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = [f"smartpractice/templates/{path.relative_to(ROOT / 'templates')}" for path in (ROOT / "templates").rglob("*") if path.is_file()]
    expected += [f"smartpractice/static/{path.relative_to(ROOT / 'static')}" for path in (ROOT / "static").rglob("*") if path.is_file()]
    migrations = ROOT / "smartpractice" / "storage" / "migrations"
    expected += [f"smartpractice/storage/migrations/{path.relative_to(migrations)}" for path in migrations.rglob("*")
                 if path.is_file() and "__pycache__" not in path.parts]
    expected += ["smartpractice/locale/de/LC_MESSAGES/messages.po"]
    assert len(expected) > 100
    assert sorted(set(expected) - names) == []


@pytest.fixture
def installed(wheel, tmp_path) -> dict[str, str]:
    """The wheel installed into a folder of its own: the environment of a process that
    takes its dependencies from this one and smartpractice only from the wheel."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target), "SMARTPRACTICE_DATA_DIR": str(tmp_path / "data"),
           "SMARTPRACTICE_SECRET_KEY": "s" * 40, **OPERATOR}
    where = subprocess.run([sys.executable, "-c", "import smartpractice; print(smartpractice.__file__)"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(target)), where
    return env


async def test_the_installed_wheel_serves_pages_without_the_source_tree(installed, tmp_path):
    port = unused_port()
    env = {**installed, "SMARTPRACTICE_BASE_URL": f"http://127.0.0.1:{port}"}
    log = (tmp_path / "server.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smartpractice", "serve", "--port", str(port), env=env, cwd=tmp_path,
        stdout=log, stderr=log)
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as browser:
            async with asyncio.timeout(60):
                while True:
                    try:
                        if (await browser.get("/readyz")).status == 200:
                            break
                    except aiohttp.ClientConnectionError:
                        assert process.returncode is None, (tmp_path / "server.log").read_text()
                        await asyncio.sleep(0.2)
            login = await browser.get("/login")
            assert login.status == 200 and "Anmelden" in await login.text()
            for asset in ("/static/app.css", "/static/call/page.js"):
                assert (await browser.get(asset)).status == 200, asset
    finally:
        process.terminate()
        await process.wait()
        log.close()
