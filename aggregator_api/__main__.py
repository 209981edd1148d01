"""``osago-aggregator`` / ``python -m aggregator_api``."""

from __future__ import annotations

from aggregator_api.app import SERVICE, create_app
from shared.service.app import serve

DEFAULT_PORT = 8081


def main() -> None:
    serve(SERVICE, create_app, DEFAULT_PORT)


if __name__ == "__main__":
    main()
