"""Retry waits: exponential backoff with full jitter that honours SAP's Retry-After."""

from __future__ import annotations

import random

from tenacity import RetryCallState
from tenacity.wait import wait_base


def backoff(
    attempt: int, *, initial: float, maximum: float, retry_after: float | None = None
) -> float:
    """Seconds before attempt `attempt + 1`: full jitter, capped, never below Retry-After."""
    ceiling = min(maximum, initial * 2 ** max(attempt - 1, 0))
    delay = random.uniform(0, ceiling)  # noqa: S311 - jitter, not crypto
    if retry_after is not None:
        delay = max(delay, min(retry_after, maximum))
    return delay


class RetryAfterWait(wait_base):
    """A tenacity wait using `backoff`, reading `retry_after` from the last SAP error."""

    def __init__(self, *, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum

    def __call__(self, retry_state: RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        return backoff(
            retry_state.attempt_number,
            initial=self.initial,
            maximum=self.maximum,
            retry_after=getattr(error, "retry_after", None),
        )
