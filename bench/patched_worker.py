"""The quote worker with the proposed hot-path changes applied in memory (bench only).

``python -m bench.patched_worker`` runs ``quote_workers`` unchanged except for
``finalize_quote`` (bench/proposals.py: two statements instead of six ORM calls under
the application lock) and ``mark_events_published`` (one batched UPDATE per 50 ms
instead of one or two commits per quote). The throughput benchmark runs it beside the
real worker, so the before/after figures come from the same run on the same machine.
"""

from __future__ import annotations

from bench.proposals import BatchedMarks, finalize_quote_fast


def main() -> None:
    import quote_workers.worker as worker
    import shared.outcomes as outcomes

    marks = BatchedMarks()
    worker.finalize_quote = finalize_quote_fast  # type: ignore[assignment]
    outcomes.mark_events_published = marks.mark  # type: ignore[assignment]

    from quote_workers.__main__ import main as worker_main

    worker_main()


if __name__ == "__main__":
    main()
