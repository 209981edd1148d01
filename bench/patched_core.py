"""The core app with the cyclic garbage collector tuned (bench only): ``python -m bench.patched_core``.

With ten thousand sockets the core app's heap holds millions of tracked objects, and
allocation-heavy work (fan-out, heartbeat pings) keeps triggering collections that walk
them. This runs ``core_app`` unchanged except for ``gc.freeze()`` after imports and a
larger first-generation threshold, so the WebSocket benchmark can compare the two.
"""

from __future__ import annotations

import gc


def main() -> None:
    from core_app.__main__ import main as core_main

    gc.collect()
    gc.freeze()  # start-up objects (modules, classes, settings) are never collected again
    gc.set_threshold(50_000, 50, 100)
    core_main()


if __name__ == "__main__":
    main()
