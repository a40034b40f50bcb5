"""Who runs the service: the Impressum and the privacy page's operator section, filled from
SMARTPRACTICE_OPERATOR_*; `serve` refuses to start without them except in demo mode."""

from __future__ import annotations

import asyncio
import os
import sys

import aiohttp
from aiohttp.test_utils import unused_port

from tests.helpers import OPERATOR, invoke, make_app, make_settings

EN = {"Accept-Language": "en"}
FULL = {"OPERATOR_NAME": "Videodienst Beispiel GmbH, vertreten durch Erika Beispiel",
        "OPERATOR_ADDRESS": "Beispielweg 1, 12345 Berlin", "OPERATOR_CONTACT": "info@videodienst.example, 030 1234567",
        "OPERATOR_REGISTER": "Amtsgericht Berlin-Charlottenburg, HRB 123456", "OPERATOR_VAT_ID": "DE123456789",
        "OPERATOR_SUPERVISORY_AUTHORITY": "Landesamt für Gesundheit und Soziales Berlin",
        "OPERATOR_CHAMBER": "Ärztekammer Berlin", "OPERATOR_PROFESSION": "Ärztin (verliehen in Deutschland)",
        "OPERATOR_PROFESSIONAL_RULES": "Berufsordnung der Ärztekammer Berlin, https://www.aerztekammer-berlin.de",
        "OPERATOR_ECONOMIC_ID": "DE987654321-00001"}
# Asked by § 5 DDG only in some cases: shown only when set.
OPTIONAL = {"OPERATOR_REGISTER": ("Registereintrag", "Register entry"),
            "OPERATOR_VAT_ID": ("Umsatzsteuer-Identifikationsnummer", "VAT identification number"),
            "OPERATOR_SUPERVISORY_AUTHORITY": ("Zuständige Aufsichtsbehörde", "Supervisory authority"),
            "OPERATOR_CHAMBER": ("Kammer", "Professional chamber"),
            "OPERATOR_PROFESSION": ("Gesetzliche Berufsbezeichnung und Staat, in dem sie verliehen wurde",
                                    "Legal professional title and the state that awarded it"),
            "OPERATOR_PROFESSIONAL_RULES": ("Berufsrechtliche Regelungen und wo sie zugänglich sind",
                                            "Professional rules and where to read them"),
            "OPERATOR_ECONOMIC_ID": ("Wirtschafts-Identifikationsnummer", "Business identification number")}
REQUIRED = ("SMARTPRACTICE_OPERATOR_NAME", "SMARTPRACTICE_OPERATOR_ADDRESS", "SMARTPRACTICE_OPERATOR_CONTACT")


async def test_the_impressum_and_the_privacy_page_name_the_operator_in_both_languages(aiohttp_client, tmp_path, database_url):
    client = await aiohttp_client(make_app(make_settings(tmp_path, database_url, **FULL)))
    for headers, title, labels in (({}, "Impressum", [german for german, _ in OPTIONAL.values()]),
                                   (EN, "Legal notice (Impressum)", [english for _, english in OPTIONAL.values()])):
        page = await (await client.get("/impressum", headers=headers)).text()
        assert f"<h1>{title}</h1>" in page
        assert all(value in page for value in FULL.values()), [v for v in FULL.values() if v not in page]
        assert all(label in page for label in labels)
        privacy = await (await client.get("/privacy", headers=headers)).text()
        operator = privacy[privacy.index('id="operator"'):]
        assert all(FULL[name] in operator for name in ("OPERATOR_NAME", "OPERATOR_ADDRESS", "OPERATOR_CONTACT"))
        assert 'href="/impressum"' in operator
    # Every page links it in its footer.
    for path in ("/", "/login", "/pricing"):
        assert 'href="/impressum"' in await (await client.get(path)).text(), path


async def test_what_is_not_given_is_not_shown(aiohttp_client, tmp_path, database_url):
    without = {name: value for name, value in FULL.items() if name not in OPTIONAL}
    client = await aiohttp_client(make_app(make_settings(tmp_path, database_url, **without)))
    page = await (await client.get("/impressum")).text()
    assert FULL["OPERATOR_ADDRESS"] in page
    shown = [german for german, _ in OPTIONAL.values() if f"<dt>{german}</dt>" in page]
    assert shown == [] and "Umsatzsteuer" not in page and "Aufsicht" not in page


async def test_a_demo_without_operator_says_so_instead_of_inventing_one(client):
    page = await (await client.get("/impressum")).text()
    assert "Der Betreiber dieses Dienstes hat Namen und Anschrift noch nicht eingetragen." in page


async def test_serve_refuses_to_start_without_the_operator_and_names_what_is_missing(cli_env):
    nothing = {**cli_env, **dict.fromkeys(REQUIRED, "")}
    refused = await invoke(["serve"], nothing)
    assert refused.exit_code != 0
    assert "Refusing to start" in refused.output and all(name in refused.output for name in REQUIRED), refused.output
    assert "serve --demo" in refused.output
    only_address = await invoke(["serve"], {**cli_env, "SMARTPRACTICE_OPERATOR_ADDRESS": "  "})
    assert only_address.exit_code != 0
    assert "SMARTPRACTICE_OPERATOR_ADDRESS" in only_address.output
    assert "SMARTPRACTICE_OPERATOR_NAME" not in only_address.output


async def test_demo_mode_starts_without_the_operator(tmp_path):
    port = unused_port()
    env = {**os.environ, **dict.fromkeys(OPERATOR, ""), "SMARTPRACTICE_DATA_DIR": str(tmp_path),
           "SMARTPRACTICE_DATABASE_URL": "", "SMARTPRACTICE_AUTO_MIGRATE": "sqlite",
           "SMARTPRACTICE_SECRET_KEY": "d" * 40, "SMARTPRACTICE_BASE_URL": f"http://127.0.0.1:{port}",
           "SMARTPRACTICE_REDIS_URL": "", "SMARTPRACTICE_HOUSEKEEPING_SECONDS": "0",
           "SMARTPRACTICE_PURGE_INTERVAL_MINUTES": "0"}
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "smartpractice", "serve", "--demo", "--host", "127.0.0.1", "--port", str(port),
            env=env, stdout=log, stderr=log)
    try:
        async with aiohttp.ClientSession() as probe, asyncio.timeout(60):
            while True:
                try:
                    answer = await probe.get(f"http://127.0.0.1:{port}/impressum")
                    if answer.status == 200:
                        break
                except aiohttp.ClientConnectionError:
                    pass
                assert process.returncode is None, log_path.read_text()
                await asyncio.sleep(0.2)
            assert "noch nicht eingetragen" in await answer.text()
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
    assert "Demo practice" in log_path.read_text()
