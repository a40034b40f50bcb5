"""Every option the service reads, as data: name, default, help.

The table in docs/configuration.md is checked against SETTINGS by a test, so an
option cannot be added without being documented.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from smartpractice.impressum import Impressum

PREFIX = "SMARTPRACTICE_"
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
RETENTION_CEILING_DAYS = 92


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str

    @property
    def env(self) -> str:
        return PREFIX + self.name


SETTINGS: tuple[Setting, ...] = (
    Setting("DATA_DIR", "var", "Folder for the embedded database, the local mail outbox and the generated secret key."),
    Setting("DATABASE_URL", "", "SQLAlchemy URL of the database. Empty: SQLite file `smartpractice.sqlite3` in the data folder. PostgreSQL: `postgresql+asyncpg://user:password@host/db`."),
    Setting("AUTO_MIGRATE", "sqlite", "Upgrade the schema at start: `always`, `never`, or `sqlite` (only for the embedded SQLite database)."),
    Setting("BASE_URL", "http://localhost:8080", "Public URL of the service, used in links and to check the Origin of requests. With `https://` cookies become `Secure` and `__Host-`, and HSTS is sent."),
    Setting("HOST", "127.0.0.1", "Address `serve` listens on unless `--host` is given."),
    Setting("PORT", "8080", "Port `serve` listens on unless `--port` is given."),
    Setting("SECRET_KEY", "", "Secret for CSRF tokens, TAN checks and the pseudonyms of rate-limit counters (at least 32 characters). Empty: generated once and kept in the data folder."),
    Setting("TRUSTED_PROXIES", "", "Comma-separated addresses or CIDR ranges (`10.0.0.0/8`, `fd00::/8`) of reverse proxies whose `X-Forwarded-For` is believed. Empty: the peer address is the client."),
    Setting("SMTP_HOST", "", "SMTP server for outgoing mail. Empty: mails are written to the `outbox` folder in the data folder instead."),
    Setting("SMTP_PORT", "25", "Port of the SMTP server."),
    Setting("SMTP_TLS", "starttls", "`starttls`, `tls` (implicit TLS) or `none` (only for a relay on the same host)."),
    Setting("SMTP_USERNAME", "", "User name for SMTP authentication; empty for none."),
    Setting("SMTP_PASSWORD", "", "Password for SMTP authentication."),
    Setting("OPERATOR_NAME", "", "Name of whoever runs this service: a person, or a company with its legal form and who represents it. Shown in the Impressum and on the privacy and terms pages; `serve` refuses to start without it, except with `--demo`."),
    Setting("OPERATOR_ADDRESS", "", "The operator's postal address (one where letters reach them, not a P.O. box), shown in the Impressum and on the privacy page; `serve` refuses to start without it, except with `--demo`."),
    Setting("OPERATOR_CONTACT", "", "How to reach the operator quickly: an email address and a phone number, shown in the Impressum and on the privacy page (also for data-protection questions); `serve` refuses to start without it, except with `--demo`."),
    Setting("OPERATOR_REGISTER", "", "The operator's register entry, e.g. `Amtsgericht Berlin-Charlottenburg, HRB 123456`, shown in the Impressum; empty if there is none."),
    Setting("OPERATOR_VAT_ID", "", "The operator's VAT identification number (§ 27a UStG), e.g. `DE123456789`, shown in the Impressum; empty if there is none."),
    Setting("OPERATOR_SUPERVISORY_AUTHORITY", "", "The authority that supervises the operator, if running the service needs an official approval (§ 5 (1) 3 DDG), e.g. `Landesamt …, Anschrift`; shown in the Impressum; empty if none is needed."),
    Setting("OPERATOR_CHAMBER", "", "For an operator in a regulated profession (e.g. a physician): the chamber they belong to (§ 5 (1) 5 a DDG), e.g. `Ärztekammer Berlin`; shown in the Impressum; empty otherwise."),
    Setting("OPERATOR_PROFESSION", "", "For an operator in a regulated profession: the legal professional title and the state that awarded it (§ 5 (1) 5 b DDG), e.g. `Ärztin (verliehen in Deutschland)`; shown in the Impressum; empty otherwise."),
    Setting("OPERATOR_PROFESSIONAL_RULES", "", "For an operator in a regulated profession: the professional rules and where to read them (§ 5 (1) 5 c DDG), e.g. `Berufsordnung der Ärztekammer Berlin, https://…`; shown in the Impressum; empty otherwise."),
    Setting("OPERATOR_ECONOMIC_ID", "", "The operator's business identification number (Wirtschafts-Identifikationsnummer, § 139c AO; § 5 (1) 6 DDG), shown in the Impressum; empty if there is none."),
    Setting("OPERATOR_EMAIL", "", "Address that gets the public contact form's offer requests. Empty: they are only stored and listed on the operator's page."),
    Setting("PRICE_TABLE", "single:39:1:25,group:69:3:22,mvz:149:10:18,therapy:29:1:19", "Plans as `kind:monthly base price in euros:clinician seats included:price per further seat`, comma-separated. The pricing page and sign-up offer these kinds."),
    Setting("VAT_PERCENT", "19", "Value-added tax on the prices of PRICE_TABLE, in percent; 0 if none is charged (a small business)."),
    Setting("PRICES_INCLUDE_VAT", "no", "`yes`: the prices of PRICE_TABLE include VAT_PERCENT; `no`: VAT is added to them. The pricing page says which."),
    Setting("SELF_SERVICE_SEATS", "10", "Most clinician seats a practice admin may book without the operator; the operator can allow a practice more."),
    Setting("MAIL_FROM", "smartpractice <noreply@localhost>", "Sender address of every mail."),
    Setting("RETENTION_DAYS", "90", "Days after which session metadata, expired tokens and audit entries are deleted; at most 92."),
    Setting("HOUSEKEEPING_SECONDS", "30", "Seconds between two runs of the consultation housekeeping inside the server: due reminder mails, and ending consultations everyone left; 0 turns it off."),
    Setting("PURGE_INTERVAL_MINUTES", "60", "Minutes between two runs of the purge inside the server (one instance runs it at a time); 0: the server does not purge, run `smartpractice purge` from a timer instead."),
    Setting("INITIAL_PASSWORD_DAYS", "14", "Days after which an initial password set by the practice expires if it was never used."),
    Setting("TAN_HOURS", "24", "Hours an invitation with a TAN stays valid when it has no planned time (an instant consultation that starts when the invitation is made), and the guest's session with it."),
    Setting("TAN_GRACE_MINUTES", "60", "Minutes an invitation to a scheduled consultation, and the guest's session with it, stay valid after the consultation's planned end."),
    Setting("REMINDER_MINUTES", "60,10", "Comma-separated minutes before the start at which participants get a reminder mail; empty for none."),
    Setting("SESSION_IDLE_MINUTES", "30", "A login session ends after this many minutes without a request."),
    Setting("SESSION_MAX_HOURS", "12", "A login session ends this many hours after login, active or not."),
    Setting("MAX_BODY_KB", "1024", "Largest request body accepted, in KiB; larger requests get 413."),
    Setting("PASSWORD_HASH_CONCURRENCY", "2", "How many password hashes may be computed at once (each takes 64 MiB and a core)."),
    Setting("PASSWORD_HASH_QUEUE", "16", "How many password hashes may wait for a free place; a login, registration or password change beyond them is asked to try again in a few seconds (503 with Retry-After)."),
    Setting("PASSWORD_HASH_WAIT_SECONDS", "4", "Seconds within which a password check should be done, waiting for a free place included: one that could not start in time (judged by how long recent hashes took) is asked to try again in a few seconds."),
    Setting("STUN_URLS", "", "Comma-separated STUN servers for browsers and the relay, e.g. `stun:turn.example.org:3478`. Empty: no STUN server is asked (no public default); peers use their host candidates and TURN."),
    Setting("TURN_URLS", "", "Comma-separated TURN servers handed to browsers, e.g. `turn:turn.example.org:3478?transport=udp,turns:turn.example.org:5349?transport=tcp`. Needs `TURN_SECRET`."),
    Setting("TURN_SECRET", "", "The `static-auth-secret` of coturn (`use-auth-secret`): each participant gets a TURN user name and password minted from it, valid for `TURN_TTL_SECONDS`."),
    Setting("TURN_TTL_SECONDS", "3600", "Seconds a minted TURN credential stays valid; the call page fetches new ones before they run out."),
    Setting("RELAY_PORTS", "", "UDP ports the relay binds its connections to, as `FIRST-LAST` (e.g. `40000-40999`): open exactly these in the firewall. Each relayed participant holds two (one more per TURN allocation of the relay). Empty: any port the kernel picks."),
    Setting("RELAY_PUBLIC_ADDRESS", "", "The public IP address of the relay's machine when it sits behind 1:1 NAT (a cloud machine whose interface has a private address): announced to browsers with the same ports. Empty: only the machine's own addresses (and what STUN_URLS reports)."),
    Setting("REDIS_URL", "", "Redis that several instances share waiting rooms and calls through, e.g. `redis://redis:6379/0` (`rediss://` for TLS, `unix:///run/redis.sock`). Empty: kept in this process's memory, for a single instance."),
    Setting("RELAY_WORKERS", "no", "`yes`: relayed calls go to `smartpractice relay-worker` processes (one per core, on any machine) that register in Redis, each call on the least-loaded one; needs REDIS_URL. `no`: each instance relays its calls itself."),
    Setting("RELAY_METRICS_PORT", "", "TCP port on which `smartpractice relay-worker` serves `/metrics` for Prometheus (its calls, connections, forwarded packets and bytes, drops), behind the same `METRICS_TOKEN`; give each worker on a machine its own (`--metrics-port`). Empty: the worker serves no metrics."),
    Setting("REDIS_PREFIX", "smartpractice", "Prefix of every Redis key and channel, so that several deployments can share one Redis server."),
    Setting("LOG_LEVEL", "INFO", "Python log level: DEBUG, INFO, WARNING or ERROR."),
    Setting("LOG_FORMAT", "text", "`text` (one line per record) or `json` (one JSON object per record, for a log collector)."),
    Setting("METRICS_TOKEN", "", "Bearer token Prometheus sends to read `/metrics` (at least 32 characters). Empty: `/metrics` answers 404."),
    Setting("STOP_SECONDS", "8", "Seconds a stopping instance (SIGTERM) gives the requests in hand, the mail being sent and the jobs, in all, before it exits; keep it below the orchestrator's kill timeout (Docker: 10)."),
)


def _int(raw: str, name: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{PREFIX}{name} must be between {low} and {high}, not {value}")
    return value


def _choice(raw: str, name: str, choices: tuple[str, ...]) -> str:
    if raw not in choices:
        raise ConfigError(f"{PREFIX}{name} must be one of {', '.join(choices)}, not {raw!r}")
    return raw


def _ice_urls(raw: str, name: str, schemes: tuple[str, ...]) -> tuple[str, ...]:
    urls = tuple(part.strip() for part in raw.split(",") if part.strip())
    for url in urls:
        if not url.startswith(schemes):
            raise ConfigError(f"{PREFIX}{name} entries start with {' or '.join(schemes)}, not {url!r}")
    return urls


def _networks(raw: str, name: str) -> tuple[IPNetwork, ...]:
    networks = []
    for entry in (part.strip() for part in raw.split(",") if part.strip()):
        try:
            # strict=False: `10.1.2.3/8` means the range 10.0.0.0/8, as in nginx's set_real_ip_from.
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigError(f"{PREFIX}{name} entries are addresses or CIDR ranges like 10.0.0.0/8, not {entry!r}") from None
    return tuple(networks)


def _redis_url(raw: str) -> str:
    if raw and not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"{PREFIX}REDIS_URL starts with redis://, rediss:// or unix://, not {raw!r}")
    return raw


def _redis_prefix(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", raw):
        raise ConfigError(f"{PREFIX}REDIS_PREFIX must be 1 to 64 letters, digits, dots, dashes or underscores, not {raw!r}")
    return raw


def _port_range(raw: str) -> range | None:
    """`FIRST-LAST`, both included, as the range of ports it names."""
    if not raw:
        return None
    match = re.fullmatch(r"(\d{1,5})-(\d{1,5})", raw)
    first, last = (int(match[1]), int(match[2])) if match else (0, 0)
    if not match or not 1024 <= first <= last <= 65535:
        raise ConfigError(
            f"{PREFIX}RELAY_PORTS must look like 40000-40999 (from 1024 to 65535, the first not above the last), "
            f"not {raw!r}")
    return range(first, last + 1)


def _public_address(raw: str) -> str | None:
    if not raw:
        return None
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}RELAY_PUBLIC_ADDRESS must be an IP address like 203.0.113.7, not {raw!r}") from None
    if address.is_unspecified or address.is_multicast or address.is_loopback:
        raise ConfigError(f"{PREFIX}RELAY_PUBLIC_ADDRESS must be an address browsers can reach, not {raw!r}")
    return str(address)


def _metrics_port(raw: str) -> int | None:
    if raw and not (raw.isdigit() and 1024 <= int(raw) <= 65535):
        raise ConfigError(f"{PREFIX}RELAY_METRICS_PORT must be a TCP port from 1024 to 65535, not {raw!r}")
    return int(raw) if raw else None


def _metrics_token(raw: str) -> str:
    if raw and len(raw) < 32:
        raise ConfigError(f"{PREFIX}METRICS_TOKEN must be at least 32 characters long")
    return raw


@dataclass(frozen=True)
class Plan:
    """One kind of practice and what it pays per month, in whole euros."""

    kind: str
    base_price: int
    included_seats: int
    seat_price: int

    def monthly_price(self, seats: int) -> int:
        return self.base_price + max(0, seats - self.included_seats) * self.seat_price


def parse_price_table(raw: str) -> tuple[Plan, ...]:
    plans: list[Plan] = []
    for entry in (part.strip() for part in raw.split(",")):
        fields = entry.split(":")
        if len(fields) != 4 or not re.fullmatch(r"[a-z][a-z0-9-]{0,31}", fields[0]):
            raise ConfigError(
                f"{PREFIX}PRICE_TABLE entries look like `kind:base price:included seats:seat price`, not {entry!r}"
            )
        base, included, seat = (_int(value, "PRICE_TABLE", 0, 1_000_000) for value in fields[1:])
        plans.append(Plan(fields[0], base, max(1, included), seat))
    if len({plan.kind for plan in plans}) != len(plans):
        raise ConfigError(f"{PREFIX}PRICE_TABLE names a kind twice")
    return tuple(plans)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    auto_migrate: str
    base_url: str
    host: str
    port: int
    secret_key: str
    trusted_proxies: tuple[IPNetwork, ...]
    smtp_host: str
    smtp_port: int
    smtp_tls: str
    smtp_username: str
    smtp_password: str
    operator: Impressum
    operator_email: str
    price_table: tuple[Plan, ...]
    vat_percent: int
    prices_include_vat: bool
    self_service_seats: int
    mail_from: str
    retention_days: int
    housekeeping_seconds: int
    purge_interval_minutes: int
    initial_password_days: int
    tan_hours: int
    tan_grace_minutes: int
    reminder_minutes: tuple[int, ...]
    session_idle_minutes: int
    session_max_hours: int
    max_body_bytes: int
    password_hash_concurrency: int
    password_hash_queue: int
    password_hash_wait_seconds: int
    stun_urls: tuple[str, ...]
    turn_urls: tuple[str, ...]
    turn_secret: str
    turn_ttl_seconds: int
    relay_ports: range | None
    relay_public_address: str | None
    relay_metrics_port: int | None
    redis_url: str
    redis_prefix: str
    relay_workers: bool
    log_level: str
    log_format: str
    metrics_token: str
    stop_seconds: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: str) -> Settings:
        """Read settings from the environment; `overrides` win (used by tests and the CLI)."""
        environ = os.environ if environ is None else environ
        raw: dict[str, str] = {}
        for setting in SETTINGS:
            raw[setting.name] = overrides.get(setting.name, environ.get(setting.env, setting.default))
        return cls._parse(raw)

    @classmethod
    def _parse(cls, raw: dict[str, str]) -> Settings:
        data_dir = Path(raw["DATA_DIR"]).expanduser()
        base_url = raw["BASE_URL"].rstrip("/")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            raise ConfigError(f"{PREFIX}BASE_URL must look like https://host[:port], not {base_url!r}")
        retention = _int(raw["RETENTION_DAYS"], "RETENTION_DAYS", 1, 10_000)
        if retention > RETENTION_CEILING_DAYS:
            # The KBV rules allow metadata to be kept for three months at most.
            raise ConfigError(
                f"{PREFIX}RETENTION_DAYS is {retention}, but metadata may be kept for at most "
                f"three months ({RETENTION_CEILING_DAYS} days)"
            )
        secret = raw["SECRET_KEY"]
        if secret and len(secret) < 32:
            raise ConfigError(f"{PREFIX}SECRET_KEY must be at least 32 characters long")
        turn_urls = _ice_urls(raw["TURN_URLS"], "TURN_URLS", ("turn:", "turns:"))
        relay_workers = _choice(raw["RELAY_WORKERS"], "RELAY_WORKERS", ("yes", "no")) == "yes"
        if relay_workers and not raw["REDIS_URL"].strip():
            raise ConfigError(f"{PREFIX}RELAY_WORKERS=yes needs {PREFIX}REDIS_URL: the workers register there")
        if turn_urls and len(raw["TURN_SECRET"]) < 16:
            raise ConfigError(f"{PREFIX}TURN_URLS needs {PREFIX}TURN_SECRET, coturn's static-auth-secret (at least 16 characters)")
        return cls(
            data_dir=data_dir,
            database_url=raw["DATABASE_URL"] or f"sqlite+aiosqlite:///{data_dir / 'smartpractice.sqlite3'}",
            auto_migrate=_choice(raw["AUTO_MIGRATE"], "AUTO_MIGRATE", ("always", "never", "sqlite")),
            base_url=base_url,
            host=raw["HOST"],
            port=_int(raw["PORT"], "PORT", 1, 65535),
            secret_key=secret,
            trusted_proxies=_networks(raw["TRUSTED_PROXIES"], "TRUSTED_PROXIES"),
            smtp_host=raw["SMTP_HOST"],
            smtp_port=_int(raw["SMTP_PORT"], "SMTP_PORT", 1, 65535),
            smtp_tls=_choice(raw["SMTP_TLS"], "SMTP_TLS", ("starttls", "tls", "none")),
            smtp_username=raw["SMTP_USERNAME"],
            smtp_password=raw["SMTP_PASSWORD"],
            operator=Impressum.from_settings(raw),
            operator_email=raw["OPERATOR_EMAIL"].strip(),
            price_table=parse_price_table(raw["PRICE_TABLE"]),
            vat_percent=_int(raw["VAT_PERCENT"], "VAT_PERCENT", 0, 100),
            prices_include_vat=_choice(raw["PRICES_INCLUDE_VAT"], "PRICES_INCLUDE_VAT", ("yes", "no")) == "yes",
            self_service_seats=_int(raw["SELF_SERVICE_SEATS"], "SELF_SERVICE_SEATS", 1, 10_000),
            mail_from=raw["MAIL_FROM"],
            retention_days=retention,
            # At most a day, so that nothing outlives the retention period by more than that.
            housekeeping_seconds=_int(raw["HOUSEKEEPING_SECONDS"], "HOUSEKEEPING_SECONDS", 0, 3600),
            purge_interval_minutes=_int(raw["PURGE_INTERVAL_MINUTES"], "PURGE_INTERVAL_MINUTES", 0, 24 * 60),
            initial_password_days=_int(raw["INITIAL_PASSWORD_DAYS"], "INITIAL_PASSWORD_DAYS", 1, 90),
            tan_hours=_int(raw["TAN_HOURS"], "TAN_HOURS", 1, 24 * 14),
            tan_grace_minutes=_int(raw["TAN_GRACE_MINUTES"], "TAN_GRACE_MINUTES", 0, 24 * 60),
            reminder_minutes=tuple(sorted(
                {_int(part.strip(), "REMINDER_MINUTES", 1, 7 * 24 * 60) for part in raw["REMINDER_MINUTES"].split(",") if part.strip()},
                reverse=True,
            )),
            session_idle_minutes=_int(raw["SESSION_IDLE_MINUTES"], "SESSION_IDLE_MINUTES", 1, 24 * 60),
            session_max_hours=_int(raw["SESSION_MAX_HOURS"], "SESSION_MAX_HOURS", 1, 24 * 7),
            max_body_bytes=_int(raw["MAX_BODY_KB"], "MAX_BODY_KB", 16, 1024 * 1024) * 1024,
            password_hash_concurrency=_int(raw["PASSWORD_HASH_CONCURRENCY"], "PASSWORD_HASH_CONCURRENCY", 1, 64),
            password_hash_queue=_int(raw["PASSWORD_HASH_QUEUE"], "PASSWORD_HASH_QUEUE", 0, 10_000),
            password_hash_wait_seconds=_int(raw["PASSWORD_HASH_WAIT_SECONDS"], "PASSWORD_HASH_WAIT_SECONDS", 1, 60),
            stun_urls=_ice_urls(raw["STUN_URLS"], "STUN_URLS", ("stun:", "stuns:")),
            turn_urls=turn_urls,
            turn_secret=raw["TURN_SECRET"],
            turn_ttl_seconds=_int(raw["TURN_TTL_SECONDS"], "TURN_TTL_SECONDS", 60, 24 * 3600),
            relay_ports=_port_range(raw["RELAY_PORTS"].strip()),
            relay_public_address=_public_address(raw["RELAY_PUBLIC_ADDRESS"].strip()),
            relay_metrics_port=_metrics_port(raw["RELAY_METRICS_PORT"].strip()),
            redis_url=_redis_url(raw["REDIS_URL"].strip()),
            redis_prefix=_redis_prefix(raw["REDIS_PREFIX"]),
            relay_workers=relay_workers,
            log_level=_choice(raw["LOG_LEVEL"].upper(), "LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR")),
            log_format=_choice(raw["LOG_FORMAT"].lower(), "LOG_FORMAT", ("text", "json")),
            metrics_token=_metrics_token(raw["METRICS_TOKEN"].strip()),
            stop_seconds=_int(raw["STOP_SECONDS"], "STOP_SECONDS", 1, 600),
        )

    def is_trusted_proxy(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # a dual-stack socket reports an IPv4 proxy as ::ffff:10.0.0.2
        return any(ip in network for network in self.trusted_proxies)

    def missing_operator_details(self) -> list[str]:
        """The settings the Impressum (§ 5 DDG) and the privacy page need that are empty."""
        return [PREFIX + name for name in self.operator.missing()]

    def plan(self, kind: str) -> Plan | None:
        return next((plan for plan in self.price_table if plan.kind == kind), None)

    @property
    def https(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def origin(self) -> str:
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    def resolved_secret_key(self) -> str:
        """The configured secret, or one generated once and kept in the data folder."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if path.exists():
            key = path.read_text().strip()
            if len(key) < 32:
                raise ConfigError(f"{path} holds no usable key (under 32 characters); delete it to make a new one")
            return key
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
        return key

