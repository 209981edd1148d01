"""Which processes the local cluster runs, on which ports (API.md, "The local cluster")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# Read by the run tooling only, never passed to a service (their Settings refuse unknown OSAGO_*).
INSTANCE_VARIABLES = {
    "core": "OSAGO_CORE_INSTANCES",
    "aggregator": "OSAGO_AGGREGATOR_INSTANCES",
    "worker": "OSAGO_WORKER_INSTANCES",
}
DEFAULT_INSTANCES = {"core": 2, "aggregator": 2, "worker": 2}
MAX_INSTANCES = 50  # core and aggregator instances take 8180 + i and 8280 + i: they must not meet

CORE_BALANCER_PORT = 8080
AGGREGATOR_BALANCER_PORT = 8081
SANDBOX_PORT = 8090
CORE_BASE_PORT = 8180
AGGREGATOR_BASE_PORT = 8280

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_RUN_DIR = REPOSITORY / ".run" / "cluster"


class LayoutError(ValueError):
    """An instance count is not a whole number from 1 to MAX_INSTANCES; the message names it."""


@dataclass(frozen=True, slots=True)
class Layout:
    cores: int = DEFAULT_INSTANCES["core"]
    aggregators: int = DEFAULT_INSTANCES["aggregator"]
    workers: int = DEFAULT_INSTANCES["worker"]
    # Added to every port: tests run a whole cluster beside `make run` (0 for `make run`).
    port_offset: int = 0

    @property
    def core_balancer_port(self) -> int:
        return CORE_BALANCER_PORT + self.port_offset

    @property
    def aggregator_balancer_port(self) -> int:
        return AGGREGATOR_BALANCER_PORT + self.port_offset

    @property
    def sandbox_port(self) -> int:
        return SANDBOX_PORT + self.port_offset

    @property
    def core_ports(self) -> list[int]:
        return [CORE_BASE_PORT + self.port_offset + i for i in range(self.cores)]

    @property
    def aggregator_ports(self) -> list[int]:
        return [AGGREGATOR_BASE_PORT + self.port_offset + i for i in range(self.aggregators)]

    @property
    def all_ports(self) -> list[int]:
        return [
            self.core_balancer_port,
            self.aggregator_balancer_port,
            self.sandbox_port,
            *self.core_ports,
            *self.aggregator_ports,
        ]


def layout_from_env(environ: Mapping[str, str], *, port_offset: int = 0) -> Layout:
    counts: dict[str, int] = {}
    for kind, variable in INSTANCE_VARIABLES.items():
        raw = environ.get(variable)
        if raw is None or raw.strip() == "":
            counts[kind] = DEFAULT_INSTANCES[kind]
            continue
        try:
            count = int(raw)
        except ValueError:
            raise LayoutError(f"{variable} must be a whole number, got {raw!r}") from None
        if not 1 <= count <= MAX_INSTANCES:
            raise LayoutError(f"{variable} must be from 1 to {MAX_INSTANCES}, got {count}")
        counts[kind] = count
    return Layout(counts["core"], counts["aggregator"], counts["worker"], port_offset)


def service_environment(environ: Mapping[str, str], layout: Layout) -> dict[str, str]:
    """What every service inherits: the caller's environment without the run tooling's own variables,
    and the addresses of this layout unless the caller set them."""
    env = {name: value for name, value in environ.items() if name not in INSTANCE_VARIABLES.values()}
    balancer = f"http://127.0.0.1:{layout.core_balancer_port}"
    env.setdefault("OSAGO_AGGREGATOR_URL", f"http://127.0.0.1:{layout.aggregator_balancer_port}")
    env.setdefault("OSAGO_SANDBOX_URL", f"http://127.0.0.1:{layout.sandbox_port}")
    # The page is served through the balancer; the instances' own addresses stay usable for debugging.
    origins = [balancer, f"http://localhost:{layout.core_balancer_port}"]
    origins += [f"http://127.0.0.1:{port}" for port in layout.core_ports]
    env.setdefault("OSAGO_ALLOWED_ORIGINS", ",".join(origins))
    # The balancers run on this machine: their X-Forwarded-For is believed, nobody else's.
    env.setdefault("OSAGO_TRUSTED_PROXIES", "127.0.0.1,::1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
