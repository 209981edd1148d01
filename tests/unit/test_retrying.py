"""The retry policy that waits out an outage in place: retries what it should, until when it should."""

from __future__ import annotations

import time

import pytest

from shared.platform.retrying import retry_until


class Flaky:
    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "stored"


async def test_an_outage_shorter_than_the_time_left_is_waited_out() -> None:
    flaky = Flaky(4, ConnectionRefusedError())
    result = await retry_until(
        flaky, until_epoch=time.time() + 5, retry_on=(OSError,), what="test", base_delay_s=0.01, max_delay_s=0.02
    )
    assert result == "stored" and flaky.calls == 5


async def test_past_the_moment_the_last_error_is_raised() -> None:
    flaky = Flaky(10**6, ConnectionRefusedError())
    with pytest.raises(ConnectionRefusedError):
        await retry_until(
            flaky, until_epoch=time.time() + 0.3, retry_on=(OSError,), what="test", base_delay_s=0.01, max_delay_s=0.05
        )
    assert flaky.calls > 2


async def test_an_error_that_is_not_an_outage_is_raised_at_once() -> None:
    flaky = Flaky(1, ValueError("a wrong statement"))
    with pytest.raises(ValueError):
        await retry_until(flaky, until_epoch=time.time() + 5, retry_on=(OSError,), what="test")
    assert flaky.calls == 1


async def test_a_moment_already_past_still_tries_once() -> None:
    flaky = Flaky(0, ConnectionRefusedError())
    assert await retry_until(flaky, until_epoch=time.time() - 1, retry_on=(OSError,), what="test") == "stored"
