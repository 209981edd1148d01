"""``python -m quote_workers.sandbox`` / ``osago-sandbox``: serve the insurer sandbox."""

from __future__ import annotations

import logging
import sys

from aiohttp import web

from shared.platform.runtime import new_event_loop
from shared.platform.settings import Settings, SettingsError

from .app import create_app

DEFAULT_PORT = 8090


def main() -> None:
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        sys.exit(f"osago-sandbox: {error}")
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    port = settings.default_port(DEFAULT_PORT)
    logging.getLogger("osago.sandbox").info("insurer sandbox on http://%s:%d", settings.host, port)
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=port,
        # No access log: per-request logging costs throughput and KBM paths carry licence numbers.
        access_log=None,
        print=None,
        # Cancel a handler when its client disconnects, so hung calls are released at once.
        handler_cancellation=True,
        shutdown_timeout=5.0,
        loop=new_event_loop(),
    )


if __name__ == "__main__":
    main()
