"""docker-compose.yml as docs/deployment.md describes it: every image pinned to an exact
version, two web instances behind the proxy whose configuration is in the repository, and
relay workers on the host network with port ranges of their own that the settings accept."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from smartpractice.config import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_every_image_is_pinned_to_an_exact_version():
    images = {name: service["image"] for name, service in SERVICES.items() if "image" in service}
    assert images, "no images?"
    for name, image in images.items():
        tag = image.rpartition(":")[2]
        # 16.4, v1.20.0, 4.17.0-r0: at least major and minor; `4` or `latest` float.
        assert re.fullmatch(r"v?\d+\.\d+(\.\d+)?(-r\d+)?", tag), f"{name}: {image}"
    # The app's own image: Python's minor version floats (3.11 is every 3.11.x), so the patch
    # release counts, and so does the Debian release under `slim`.
    bases = re.findall(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert bases, "no FROM in the Dockerfile?"
    for image in bases:
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+", image), f"Dockerfile: {image}"


def test_two_web_instances_behind_the_proxy_share_redis_and_hand_relayed_calls_to_workers():
    web = [name for name, service in SERVICES.items()
           if service.get("environment", {}).get("SMARTPRACTICE_RELAY_WORKERS") == "yes"]
    assert web == ["web-a", "web-b"]
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in SERVICES["proxy"]["volumes"]
    assert re.search(r"reverse_proxy web-a:8080 web-b:8080", caddyfile)
    proxy_address = SERVICES["proxy"]["networks"]["front"]["ipv4_address"]
    for name in web:
        environment = SERVICES[name]["environment"]
        assert environment["SMARTPRACTICE_REDIS_URL"].startswith("redis://")
        assert proxy_address in environment["SMARTPRACTICE_TRUSTED_PROXIES"].split(",")
        assert environment["SMARTPRACTICE_AUTO_MIGRATE"] == "never"  # the migrate service does it once


def test_relay_workers_run_on_the_host_network_with_ranges_of_their_own():
    ranges = []
    for name, service in SERVICES.items():
        command = service.get("command", [])
        if command[:2] != ["smartpractice", "relay-worker"]:
            continue
        assert service["network_mode"] == "host", name
        ports = command[command.index("--ports") + 1]
        ranges.append(Settings.from_env({}, RELAY_PORTS=ports).relay_ports)
    assert len(ranges) >= 2
    taken = [port for ports in ranges for port in ports]
    assert len(taken) == len(set(taken)), "relay workers' ranges overlap"


def test_every_relay_worker_serves_its_metrics_on_a_port_of_its_own_behind_the_token():
    """A worker with --metrics-port but no token refuses to start (the command says so), and
    workers on host networking share the host's ports: each needs its own, clear of the
    relay's UDP ranges and of the ports the other services publish on the host."""
    workers = {name: service for name, service in SERVICES.items()
               if service.get("command", [])[:2] == ["smartpractice", "relay-worker"]}
    assert len(workers) >= 2
    taken = {3478, 6379, 8025, 8080}
    for name, service in workers.items():
        command = service["command"]
        port = Settings.from_env({}, RELAY_METRICS_PORT=command[command.index("--metrics-port") + 1]).relay_metrics_port
        assert port not in taken, f"{name}: port {port} taken"
        assert port not in Settings.from_env({}, RELAY_PORTS=command[command.index("--ports") + 1]).relay_ports
        taken.add(port)
        token = service["environment"]["SMARTPRACTICE_METRICS_TOKEN"]
        assert token.startswith("${METRICS_TOKEN:?"), f"{name}: {token}"
    # The web instances take the same token, so one Prometheus job setting reads them all.
    for name in ("web-a", "web-b"):
        assert SERVICES[name]["environment"]["SMARTPRACTICE_METRICS_TOKEN"] == token
