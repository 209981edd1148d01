"""``osago-core`` / ``python -m core_app``."""

from __future__ import annotations

from core_app.app import SERVICE, create_app
from shared.service.app import serve

DEFAULT_PORT = 8080


def main() -> None:
    serve(SERVICE, create_app, DEFAULT_PORT)


if __name__ == "__main__":
    main()
