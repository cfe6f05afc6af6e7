from paas.model import CrashState
from paas.reconciler.backoff import after_crash, delay_for


def test_delays_double_from_one_second_up_to_five_minutes() -> None:
    assert [delay_for(n) for n in range(1, 6)] == [0.0, 1.0, 2.0, 4.0, 8.0]
    assert delay_for(12) == 300.0 and delay_for(40) == 300.0


def test_first_crash_restarts_at_once_then_backs_off() -> None:
    first = after_crash(None, "c1", started_at=100.0, now=101.0)
    assert first == CrashState(1, 101.0, "c1")
    second = after_crash(first, "c2", started_at=101.5, now=102.0)
    assert second == CrashState(2, 103.0, "c2")
    third = after_crash(second, "c3", started_at=103.2, now=104.0)
    assert third == CrashState(3, 106.0, "c3")


def test_a_crash_is_counted_once() -> None:
    state = after_crash(None, "c1", started_at=0.0, now=5.0)
    assert after_crash(state, "c1", started_at=0.0, now=50.0) is state


def test_ten_minutes_up_resets_the_count() -> None:
    state = CrashState(7, 0.0, "c6")
    assert after_crash(state, "c7", started_at=1000.0, now=1700.0).count == 1
