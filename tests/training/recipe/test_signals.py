"""The stop handlers with real signals sent to this process (the whole run under a signal: slow/test_stop_signals.py)."""

import os
import signal
import time

import pytest

from contract_review.training.recipe.signals import REPEAT_S, SignalStop, StopNow, exit_status


def _send(sig: int) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(0.05)  # Python runs the handler at the next bytecode of the main thread


def test_inside_the_loop_a_first_signal_is_recorded_and_a_repeat_within_the_window_is_the_same_request():
    with SignalStop(announce=False) as stop, stop.deferring():
        _send(signal.SIGTERM)
        assert stop.requested and stop.name == "SIGTERM"
        _send(signal.SIGINT)  # a launcher passing on what the terminal sent
        assert stop.name == "SIGTERM"


def test_a_second_signal_after_the_window_stops_at_once():
    with SignalStop(announce=False) as stop, stop.deferring():
        _send(signal.SIGINT)
        stop.received_at -= REPEAT_S  # as if the first came REPEAT_S seconds ago
        with pytest.raises(StopNow) as exc:
            _send(signal.SIGINT)
    assert exc.value.signum == signal.SIGINT and exit_status(exc.value.signum) == 130


def test_outside_the_loop_the_first_signal_stops_at_once():
    with SignalStop(announce=False), pytest.raises(StopNow) as exc:
        _send(signal.SIGTERM)
    assert exit_status(exc.value.signum) == 143


def test_the_previous_handlers_come_back_after_the_run():
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    with SignalStop(announce=False):
        assert signal.getsignal(signal.SIGTERM) != before[signal.SIGTERM]
    assert {s: signal.getsignal(s) for s in before} == before


def test_the_announcement_goes_to_stderr_with_how_to_stop_at_once(capfd):
    with SignalStop() as stop, stop.deferring():
        _send(signal.SIGTERM)
    err = capfd.readouterr().err
    assert "SIGTERM: finishing this step, then writing a checkpoint" in err and "send it again" in err
