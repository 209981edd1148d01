"""The quote worker with the pre-rewrite database path (bench/baseline.py) patched in: "before".

``python -m bench.baseline_worker`` is ``quote_workers`` unchanged except for
``finalize_quote`` and ``mark_events_published``; throughput and overhead run it beside
the real worker, so before/after figures come from the same run on the same machine.
"""

from __future__ import annotations


def main() -> None:
    import quote_workers.worker as worker
    import shared.outcomes as outcomes
    from bench import baseline

    worker.finalize_quote = baseline.finalize_quote  # type: ignore[assignment]
    outcomes.mark_events_published = baseline.mark_events_published  # type: ignore[assignment]

    from quote_workers.__main__ import main as worker_main

    worker_main()


if __name__ == "__main__":
    main()
