"""The circuit breaker, driven by a fake clock."""

from __future__ import annotations

from app.sap.circuit import CLOSED, HALF_OPEN, OPEN, CircuitBreaker


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_when_most_calls_fail_and_probes_after_pause() -> None:
    clock = Clock()
    breaker = CircuitBreaker(
        window=10, min_calls=4, failure_ratio=0.5, open_seconds=30, clock=clock
    )
    for success in (True, False, True):
        assert breaker.allow()
        breaker.record(success)
    assert breaker.state == CLOSED  # fewer than min_calls
    breaker.record(False)
    assert breaker.state == OPEN and not breaker.allow()
    assert breaker.retry_after() == 30
    clock.now = 30
    assert breaker.allow() and breaker.state == HALF_OPEN
    assert not breaker.allow()  # one probe at a time
    breaker.record(False)
    assert breaker.state == OPEN and breaker.retry_after() == 60  # the pause doubled
    clock.now = 89
    assert not breaker.allow()
    clock.now = 90
    assert breaker.allow()
    breaker.record(True)
    assert breaker.state == CLOSED and breaker.allow()


def test_pause_doubles_per_failed_probe_up_to_the_cap_and_resets_after_recovery() -> None:
    clock = Clock()
    breaker = CircuitBreaker(
        window=4, min_calls=2, failure_ratio=0.5, open_seconds=2, max_open_seconds=10, clock=clock
    )
    breaker.record(False)
    breaker.record(False)
    pauses = []
    for _ in range(5):
        pauses.append(breaker.retry_after())
        clock.now += breaker.retry_after()
        assert breaker.allow()
        breaker.record(False)  # SAP still down
    assert pauses == [2, 4, 8, 10, 10]
    clock.now += breaker.retry_after()
    assert breaker.allow()
    breaker.record(True)
    breaker.record(False)
    breaker.record(False)  # a new outage starts from the first pause again
    assert breaker.state == OPEN and breaker.retry_after() == 2


def test_stays_closed_while_most_calls_succeed() -> None:
    breaker = CircuitBreaker(window=10, min_calls=4, failure_ratio=0.5, clock=Clock())
    for success in [True, True, False] * 10:
        breaker.record(success)
    assert breaker.state == CLOSED


def test_refuses_while_a_probe_is_in_flight_and_an_unsent_probe_frees_the_turn() -> None:
    clock = Clock()
    breaker = CircuitBreaker(window=4, min_calls=2, open_seconds=5, clock=clock)
    breaker.record(False)
    breaker.record(False)
    assert breaker.refusing()
    clock.now = 5
    assert not breaker.refusing()  # a probe is due: the next caller sends it
    assert breaker.allow() and breaker.state == HALF_OPEN
    assert breaker.refusing() and not breaker.allow()  # the probe is in flight
    breaker.abandon()  # e.g. no SAP call slot came free in time
    assert breaker.allow() and breaker.state == HALF_OPEN
    breaker.record(True)
    breaker.abandon()  # after an outcome it changes nothing
    assert breaker.state == CLOSED


def test_failing_means_the_last_call_failed_until_one_succeeds() -> None:
    breaker = CircuitBreaker(window=10, min_calls=4, clock=Clock())
    assert not breaker.failing()  # nothing seen yet
    breaker.record(False)
    assert breaker.failing() and breaker.state == CLOSED  # one failure opens nothing
    breaker.record(True)
    assert not breaker.failing()
    breaker.record(False)
    breaker.record(False)
    assert breaker.state == OPEN and breaker.refusing()


def test_opens_after_failures_in_a_row_before_the_window_is_full() -> None:
    breaker = CircuitBreaker(window=20, min_calls=10, consecutive_failures=3, clock=Clock())
    breaker.record(False)
    breaker.record(False)
    breaker.record(True)  # a success breaks the run
    breaker.record(False)
    breaker.record(False)
    assert breaker.state == CLOSED
    breaker.record(False)
    assert breaker.state == OPEN  # three in a row, with only 6 calls seen
