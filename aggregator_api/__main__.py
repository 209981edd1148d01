"""``osago-aggregator`` / ``python -m aggregator_api``."""

from __future__ import annotations

import logging

from aiohttp import web

from aggregator_api.app import SERVICE, create_app
from shared.log_setup import configure_logging
from shared.settings import settings_or_exit

DEFAULT_PORT = 8081


def main() -> None:
    settings = settings_or_exit()
    configure_logging(SERVICE, settings.log_level, json_lines=settings.log_json)
    logging.getLogger(__name__).info("starting", extra={"settings": settings.redacted()})
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.default_port(DEFAULT_PORT),
        print=None,
        shutdown_timeout=10,
        access_log=None,
    )


if __name__ == "__main__":
    main()
