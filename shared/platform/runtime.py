"""Process-wide runtime tuning shared by every service's entry point."""

from __future__ import annotations

import asyncio
import gc

import uvloop

# Allocations per young collection. Long-lived services hold large heaps (10,000 sockets,
# pools, caches): with the default 700 the cyclic collector keeps rescanning them, which
# the WebSocket benchmark measured as half of a core app's samples during fan-out.
GC_YOUNG_THRESHOLD = 50_000


def tune_garbage_collector() -> None:
    """Move everything allocated at start-up out of the collector's way, and collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 50, 100)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop: its transports and scheduler cost a fraction of asyncio's per send and callback,
    and a service here spends most of its CPU there (many small messages on loopback)."""
    return uvloop.new_event_loop()
