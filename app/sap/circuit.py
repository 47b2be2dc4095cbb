"""A circuit breaker: stop hammering SAP when most recent calls failed, probe after a pause."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from app.sap import metrics

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    """Opens when `consecutive_failures` calls in a row failed for technical reasons (SAP down:
    found out quickly), or when at least `failure_ratio` of the last `window` calls (and
    `min_calls` of them) did (SAP failing now and then); after `open_seconds` one probe call
    decides: success closes it, failure opens it again for twice the pause, up to
    `max_open_seconds`. A short outage is noticed to be over within seconds; a long one is
    probed rarely.

    Small and in-process on purpose: each replica protects SAP from its own traffic, and the
    state is a few fields that a test can drive with a fake clock.
    """

    def __init__(
        self,
        *,
        window: int = 20,
        min_calls: int = 10,
        consecutive_failures: int = 5,
        failure_ratio: float = 0.5,
        open_seconds: float = 2.0,
        max_open_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window, self.min_calls = window, min_calls
        self.consecutive_failures = consecutive_failures
        self.failure_ratio, self.open_seconds = failure_ratio, open_seconds
        self.max_open_seconds = max(open_seconds, max_open_seconds)
        self.pause = open_seconds  # the current pause: doubled by each failed probe
        self._clock = clock
        self._results: deque[bool] = deque(maxlen=window)
        self._streak = 0  # technical failures in a row, since the last success
        self.state = CLOSED
        self._opened_at = 0.0
        self._probing = False
        self.recoveries = 0  # how often a probe closed the circuit again

    def is_open(self) -> bool:
        """True while calls are refused and no probe is due yet."""
        return self.state == OPEN and self._clock() < self._opened_at + self.pause

    def refusing(self) -> bool:
        """True while no call would be let through: open with no probe due, or probe in flight."""
        return self.is_open() or (self.state == HALF_OPEN and self._probing)

    def failing(self) -> bool:
        """True when the last call seen failed: SAP may be going down, not worth queueing for."""
        return self._streak > 0

    def allow(self) -> bool:
        """May a call go to SAP now? In half-open state only one probe at a time."""
        if self.state == OPEN and self._clock() >= self._opened_at + self.pause:
            self.state, self._probing = HALF_OPEN, False
            metrics.SAP_CIRCUIT_TRANSITIONS.labels(state=HALF_OPEN).inc()
        if self.state == OPEN:
            return False
        if self.state == HALF_OPEN:
            if self._probing:
                return False
            self._probing = True
        return True

    def abandon(self) -> None:
        """The probe that `allow` let through was never sent: the next call may probe."""
        if self.state == HALF_OPEN:
            self._probing = False

    def retry_after(self) -> float:
        return max(0.0, self._opened_at + self.pause - self._clock())

    def record(self, success: bool) -> None:
        """The outcome of a call that `allow` let through."""
        if self.state == HALF_OPEN:
            self._probing = False
            if success:
                self.state = CLOSED
                self._results.clear()
                self.recoveries += 1
                metrics.SAP_CIRCUIT_TRANSITIONS.labels(state=CLOSED).inc()
            else:
                self._open(pause=min(self.pause * 2, self.max_open_seconds))
            return
        self._results.append(success)
        self._streak = 0 if success else self._streak + 1
        failures = self._results.count(False)
        if self._streak >= self.consecutive_failures or (
            len(self._results) >= self.min_calls
            and failures / len(self._results) >= self.failure_ratio
        ):
            self._open(pause=self.open_seconds)

    def _open(self, pause: float) -> None:
        self.state, self._opened_at, self.pause = OPEN, self._clock(), pause
        self._results.clear()
        self._streak = 0
        metrics.SAP_CIRCUIT_TRANSITIONS.labels(state=OPEN).inc()
