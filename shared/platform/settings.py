"""Configuration: environment variables → one frozen object per process.

Every variable has a working local default; an unknown ``OSAGO_*`` variable or a
malformed value stops the process at start with a message naming the variable.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from shared.quoting.insurers import CATALOGUE

ENV_PREFIX = "OSAGO_"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/osago"
# The outbox relay publishes a row again once its publisher's confirm timeout and this have passed.
RELAY_SETTLE_MARGIN_S = 1.0
FAILPOINTS = frozenset({"", "after_insurer", "after_db", "after_publish"})


class SettingsError(ValueError):
    """A configuration variable is unknown or malformed; the message names it."""


def _parse_str(raw: str) -> str:
    return raw


def _parse_int(raw: str) -> int:
    return int(raw)


def _parse_float(raw: str) -> float:
    return float(raw)


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true/false, got {raw!r}")


def _parse_csv(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _parse_networks(raw: str) -> tuple[str, ...]:
    """Addresses or CIDRs, each checked and written in its canonical form (10.0.0.0/8, ::1/128)."""
    networks = []
    for item in _parse_csv(raw):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(f"expected addresses or CIDRs, got {item!r}") from None
    return tuple(networks)


def _parse_url(schemes: tuple[str, ...], *, optional: bool = False) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if optional and raw == "":
            return raw
        parts = urlsplit(raw)
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(f"expected a {'/'.join(schemes)} URL, got {raw!r}")
        return raw

    return parse


_PARSERS: dict[str, Callable[[str], Any]] = {}


def env_field(default: Any, parse: Callable[[str], Any], *, secret: bool = False) -> Any:
    """A settings field read from ``OSAGO_<FIELD_NAME>``."""
    return field(default=default, metadata={"parse": parse, "secret": secret})


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = env_field(DEFAULT_DATABASE_URL, _parse_url(("postgres", "postgresql")))
    # A streaming replica of that database for reads that may lag (a partner's list, GET of a
    # complete application); empty: none, every read goes to database_url. Writes, invariants
    # and the snapshot that opens an offers socket always use database_url (shared.platform.replica).
    database_replica_url: str = env_field("", _parse_url(("postgres", "postgresql"), optional=True))
    amqp_url: str = env_field("amqp://guest:guest@127.0.0.1:5672/", _parse_url(("amqp", "amqps")))
    # Members of each job queue (x-quorum-initial-group-size) on a RabbitMQ cluster; 0: the
    # broker's default (every node it has). Fixed once the queues exist: changing it needs
    # `osago-admin migrate`, which rebuilds them keeping their jobs.
    amqp_quorum_group_size: int = env_field(0, _parse_int)
    host: str = env_field("127.0.0.1", _parse_str)
    # None means "the process's own default port" (see default_port()).
    port: int | None = env_field(None, _parse_int)
    aggregator_url: str = env_field("http://127.0.0.1:8081", _parse_url(("http", "https")))
    sandbox_url: str = env_field("http://127.0.0.1:8090", _parse_url(("http", "https")))
    service_token: str = env_field("local-dev-service-token", _parse_str, secret=True)
    # Key for deriving applications' access tokens (HMAC); never stored in the database.
    token_secret: str = env_field("local-dev-token-secret", _parse_str, secret=True)
    # The secret before the current one while it is being rotated (empty: none): tokens made
    # under it still open their applications; new ones are made under token_secret only.
    token_previous_secret: str = env_field("", _parse_str, secret=True)
    # Shared with the payment provider (the sandbox plays one): it signs its callbacks with this
    # key (shared.payments.signature); the system verifies them. Never stored in the database.
    payment_callback_secret: str = env_field("local-dev-payment-callback-secret", _parse_str, secret=True)
    # An access token opens its application until this long after the application's deadline
    # (reading the offers, ordering, the policy); it carries its expiry (shared.intake.access).
    access_token_ttl_s: float = env_field(7 * 24 * 3600.0, _parse_float)
    # Aggregator: applications older than this many days lose their personal data (payload
    # reduced to what statistics need, VIN, plate and idempotency key dropped); 0 keeps it forever.
    retention_days: int = env_field(30, _parse_int)
    # Aggregator: how often each instance looks for applications past the retention.
    retention_interval_s: float = env_field(600.0, _parse_float)
    quote_deadline_s: float = env_field(60.0, _parse_float)
    insurers: tuple[str, ...] = env_field((), _parse_csv)
    instance_name: str = env_field("", _parse_str)
    log_level: str = env_field("INFO", _parse_str)
    log_json: bool = env_field(True, _parse_bool)
    # Worker: jobs one worker process holds at most, over all its insurer queues (each
    # queue's consumer gets an equal share). Insurer calls wait on the network, so one
    # process keeps hundreds in flight at little cost.
    worker_prefetch: int = env_field(200, _parse_int)
    # Worker: concurrent calls one worker process makes to one insurer.
    insurer_concurrency: int = env_field(20, _parse_int)
    # Worker: one insurer HTTP call may take at most this long (also capped by the deadline).
    insurer_call_timeout_s: float = env_field(20.0, _parse_float)
    # Worker: tries per insurer call for transient failures (a malformed answer is retried once).
    retry_max_tries: int = env_field(3, _parse_int)
    # Worker: consecutive transient failures that open an insurer's circuit, and how long it stays open.
    breaker_failures: int = env_field(5, _parse_int)
    breaker_recovery_s: float = env_field(30.0, _parse_float)
    # Fault injection for tests: the worker SIGKILLs itself at this step of its first job
    # ("after_insurer", "after_db", "after_publish"); empty in production.
    failpoint: str = env_field("", _parse_str)
    # Publishing a message waits at most this long for the broker's confirm.
    publish_timeout_s: float = env_field(5.0, _parse_float)
    # Aggregator: how often the outbox relay and the deadline sweeper look for work.
    relay_interval_s: float = env_field(1.0, _parse_float)
    # Aggregator: a pending quote is closed this long after its deadline (safety net).
    sweeper_grace_s: float = env_field(2.0, _parse_float)
    db_pool_max: int = env_field(10, _parse_int)
    max_body_bytes: int = env_field(64 * 1024, _parse_int)
    ws_heartbeat_s: float = env_field(20.0, _parse_float)
    # Offers WebSocket limits. Clients have nothing to say but pongs, so a frame larger than
    # this is abuse (closed with 1009); a client silent (no pong either) this long is closed
    # with 1008; each instance holds at most this many sockets per application (429 beyond).
    # (ws_heartbeat_s = 0 turns the server's pings off.)
    ws_max_message_bytes: int = env_field(4096, _parse_int)
    ws_idle_timeout_s: float = env_field(60.0, _parse_float)
    ws_max_sockets_per_application: int = env_field(10, _parse_int)
    allowed_origins: tuple[str, ...] = env_field(
        ("http://127.0.0.1:8080", "http://localhost:8080", "http://127.0.0.1:8180", "http://localhost:8180"),
        _parse_csv,
    )
    # Browser path (no API key): requests per second per client address (IPv6: per /64), a burst
    # of as many. A page load makes 2-4 API requests (reference data, the application, its socket,
    # a re-read); 20 lets several people behind one NAT (a family, a flat) load and submit at the
    # same moment, while one address still cannot push more than 20 applications a second.
    browser_rps: float = env_field(20.0, _parse_float)
    # Core app: peers whose X-Forwarded-For is believed (the balancers), as addresses or CIDRs,
    # comma-separated; empty: nobody's, the TCP peer is the client. `make run` sets 127.0.0.1,::1.
    trusted_proxies: tuple[str, ...] = env_field((), _parse_networks)
    # Core app: how long a lookup of an API key (partner found, or not) is trusted, so a
    # revoked, deactivated or changed key takes effect within it (0: a query every request).
    api_key_cache_s: float = env_field(30.0, _parse_float)
    # Core app: unknown API keys one client address may have looked up per minute (a burst of
    # as many, refilled evenly); past it they are answered 401 without a query.
    auth_failures_per_minute: float = env_field(10.0, _parse_float)

    @classmethod
    def variables(cls) -> dict[str, dataclasses.Field[Any]]:
        """Every variable a process reads, by name (``OSAGO_<FIELD>``): the only ones it accepts."""
        return {ENV_PREFIX + f.name.upper(): f for f in dataclasses.fields(cls)}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        environ = os.environ if environ is None else environ
        known = cls.variables()
        unknown = sorted(name for name in environ if name.startswith(ENV_PREFIX) and name not in known)
        if unknown:
            raise SettingsError(f"unknown configuration variable {unknown[0]}")
        values: dict[str, Any] = {}
        for env_name, spec in known.items():
            raw = environ.get(env_name)
            if raw is None:
                continue
            try:
                values[spec.name] = spec.metadata["parse"](raw)
            except ValueError as exc:
                raise SettingsError(f"{env_name} is malformed: {exc}") from None
        values.update(overrides)
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        positive = {
            "quote_deadline_s": self.quote_deadline_s,
            "worker_prefetch": self.worker_prefetch,
            "insurer_concurrency": self.insurer_concurrency,
            "insurer_call_timeout_s": self.insurer_call_timeout_s,
            "publish_timeout_s": self.publish_timeout_s,
            "relay_interval_s": self.relay_interval_s,
            "db_pool_max": self.db_pool_max,
            "max_body_bytes": self.max_body_bytes,
            "browser_rps": self.browser_rps,
            "ws_max_message_bytes": self.ws_max_message_bytes,
            "ws_idle_timeout_s": self.ws_idle_timeout_s,
            "ws_max_sockets_per_application": self.ws_max_sockets_per_application,
            "retry_max_tries": self.retry_max_tries,
            "breaker_failures": self.breaker_failures,
            "breaker_recovery_s": self.breaker_recovery_s,
            "auth_failures_per_minute": self.auth_failures_per_minute,
            "access_token_ttl_s": self.access_token_ttl_s,
            "retention_interval_s": self.retention_interval_s,
        }
        for name, value in positive.items():
            if value <= 0:
                raise SettingsError(f"{ENV_PREFIX}{name.upper()} must be positive, got {value}")
        unknown_insurers = [code for code in self.insurers if code not in insurer_codes()]
        if unknown_insurers:
            raise SettingsError(
                f"{ENV_PREFIX}INSURERS names an unknown insurer {unknown_insurers[0]!r}; known: {', '.join(insurer_codes())}"
            )
        if self.failpoint not in FAILPOINTS:
            raise SettingsError(f"{ENV_PREFIX}FAILPOINT must be one of {sorted(FAILPOINTS)}, got {self.failpoint!r}")
        if self.ws_heartbeat_s < 0:
            raise SettingsError(f"{ENV_PREFIX}WS_HEARTBEAT_S must be 0 (off) or positive, got {self.ws_heartbeat_s}")
        if 0 < self.ws_heartbeat_s and self.ws_idle_timeout_s <= self.ws_heartbeat_s:
            # A live client speaks only by answering the heartbeat ping: a shorter idle
            # timeout would close every healthy browser between two pings.
            raise SettingsError(
                f"{ENV_PREFIX}WS_IDLE_TIMEOUT_S ({self.ws_idle_timeout_s:g}) must be longer than "
                f"{ENV_PREFIX}WS_HEARTBEAT_S ({self.ws_heartbeat_s:g})"
            )
        if self.publish_timeout_s + RELAY_SETTLE_MARGIN_S >= self.quote_deadline_s:
            # The outbox relay leaves a row to its publisher for that long: with a deadline no
            # longer, a job whose first publish failed would never be published in time.
            raise SettingsError(
                f"{ENV_PREFIX}PUBLISH_TIMEOUT_S ({self.publish_timeout_s:g}) must be shorter than "
                f"{ENV_PREFIX}QUOTE_DEADLINE_S ({self.quote_deadline_s:g}) less {RELAY_SETTLE_MARGIN_S:g} s"
            )
        if self.retention_days < 0:
            raise SettingsError(
                f"{ENV_PREFIX}RETENTION_DAYS must be 0 (keep forever) or positive, got {self.retention_days}"
            )
        if self.api_key_cache_s < 0:
            raise SettingsError(f"{ENV_PREFIX}API_KEY_CACHE_S must be 0 (no cache) or more, got {self.api_key_cache_s}")
        if not self.payment_callback_secret:
            raise SettingsError(f"{ENV_PREFIX}PAYMENT_CALLBACK_SECRET must not be empty (it keys callback signatures)")
        if self.amqp_quorum_group_size < 0:
            raise SettingsError(
                f"{ENV_PREFIX}AMQP_QUORUM_GROUP_SIZE must be 0 (the broker's default) or positive, "
                f"got {self.amqp_quorum_group_size}"
            )
        if self.port is not None and not 0 <= self.port <= 65535:
            raise SettingsError(f"{ENV_PREFIX}PORT must be a TCP port, got {self.port}")

    def default_port(self, fallback: int) -> int:
        return fallback if self.port is None else self.port

    def redacted(self) -> dict[str, Any]:
        """Settings for a start-up log line: secrets and URL passwords hidden."""
        shown: dict[str, Any] = {}
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if spec.metadata.get("secret"):
                value = "***"
            elif isinstance(value, str) and "@" in value and "://" in value:
                parts = urlsplit(value)
                if parts.password:
                    value = value.replace(f":{parts.password}@", ":***@")
            shown[spec.name] = value
        return shown


def insurer_codes() -> tuple[str, ...]:
    return tuple(insurer.code for insurer in CATALOGUE)


def settings_or_exit(**overrides: Any) -> Settings:
    """Settings for a process entry point: a configuration error ends it with one clear line."""
    try:
        return Settings.from_env(**overrides)
    except SettingsError as exc:
        raise SystemExit(f"configuration error: {exc}") from None
