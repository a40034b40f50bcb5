"""Settings: defaults, refusals, and a documentation table that stays complete."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from smartpractice.config import SETTINGS, ConfigError, Settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_defaults_run_the_embedded_setup():
    settings = Settings.from_env({})
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.database_url.endswith("var/smartpractice.sqlite3")
    assert settings.retention_days == 90
    assert settings.smtp_host == "" and settings.outbox_dir == Path("var/outbox")
    assert not settings.https


def test_environment_variables_are_read():
    settings = Settings.from_env({"SMARTPRACTICE_BASE_URL": "https://video.example.org/", "SMARTPRACTICE_SMTP_PORT": "587"})
    assert settings.base_url == "https://video.example.org"
    assert settings.https and settings.origin == "https://video.example.org"
    assert settings.smtp_port == 587


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RETENTION_DAYS", "93", "at most three months"),
        ("RETENTION_DAYS", "ninety", "whole number"),
        ("PORT", "70000", "between 1 and 65535"),
        ("BASE_URL", "video.example.org", "must look like"),
        ("BASE_URL", "https://example.org/sub/path", "must look like"),
        ("SECRET_KEY", "too-short", "at least 32"),
        ("AUTO_MIGRATE", "sometimes", "must be one of"),
        ("RELAY_PORTS", "40999-40000", "the first not above the last"),
        ("RELAY_PORTS", "80-1000", "from 1024 to 65535"),
        ("RELAY_PORTS", "40000-70000", "from 1024 to 65535"),
        ("RELAY_PORTS", "40000", "must look like 40000-40999"),
        ("RELAY_PORTS", "40000:40999", "must look like 40000-40999"),
        ("RELAY_PUBLIC_ADDRESS", "relay.example.org", "must be an IP address"),
        ("RELAY_METRICS_PORT", "80", "a TCP port from 1024 to 65535"),
        ("RELAY_METRICS_PORT", "9100-9101", "a TCP port from 1024 to 65535"),
        ("RELAY_PUBLIC_ADDRESS", "0.0.0.0", "browsers can reach"),  # noqa: S104
    ],
)
def test_bad_values_are_refused_with_a_clear_message(name, value, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({f"SMARTPRACTICE_{name}": value})


def test_the_relay_port_range_includes_both_ends():
    settings = Settings.from_env({"SMARTPRACTICE_RELAY_PORTS": "40000-40999",
                                  "SMARTPRACTICE_RELAY_PUBLIC_ADDRESS": " 203.0.113.7 "})
    assert settings.relay_ports == range(40000, 41000) and len(settings.relay_ports) == 1000
    assert settings.relay_public_address == "203.0.113.7"
    assert Settings.from_env({}).relay_ports is None and Settings.from_env({}).relay_public_address is None


def test_every_setting_is_documented_in_one_table():
    rows = re.findall(r"^\|\s*`(SMARTPRACTICE_[A-Z_]+)`\s*\|", DOC.read_text(), flags=re.MULTILINE)
    assert sorted(rows) == sorted(setting.env for setting in SETTINGS)


def test_every_setting_has_help():
    for setting in SETTINGS:
        assert setting.help.strip().endswith("."), setting.name


def test_trusted_proxies_are_addresses_or_ranges():
    settings = Settings.from_env({"SMARTPRACTICE_TRUSTED_PROXIES": "127.0.0.1, 10.1.2.3/8,fd00::/8"})
    for trusted in ("127.0.0.1", "10.0.0.1", "10.255.255.254", "fd00::1", "::ffff:10.20.30.40"):
        assert settings.is_trusted_proxy(trusted), trusted
    for other in ("127.0.0.2", "11.0.0.1", "fe80::1", "::ffff:192.0.2.1", "unknown", "", "10.0.0.1/8"):
        assert not settings.is_trusted_proxy(other), other
    assert not Settings.from_env({}).is_trusted_proxy("127.0.0.1")


@pytest.mark.parametrize("value", ["10.0.0.0/33", "proxy.example.org", "10.0.0.0/8;11.0.0.0/8"])
def test_a_proxy_that_is_no_address_or_range_is_refused(value):
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES entries are addresses or CIDR ranges"):
        Settings.from_env({"SMARTPRACTICE_TRUSTED_PROXIES": value})
