"""Stopping a run on SIGTERM or SIGINT without losing the steps since the last checkpoint.

A scheduler, `docker stop`, a preemption notice and `kill` send SIGTERM; Ctrl-C sends SIGINT. While the
training loop runs, the first of them asks the run to stop: the current step (with its evaluation and
checkpoint, when due) finishes, a checkpoint is written (atomically, as every checkpoint), a `stop`
event naming the signal is logged, and `train` exits with 128 + the signal's number (130 for SIGINT,
143 for SIGTERM) and says how to resume. Under torchrun or deepspeed every rank learns of the request at
the end of the same step (`strategy.any_rank`), so all stop after that step and write one checkpoint.

A second signal stops at once (the previous checkpoint stays intact: checkpoints are renamed into
place whole). A repeat within `REPEAT_S` seconds of the first counts as the same request: launchers
pass on a signal their workers already had from the terminal (deepspeed's launcher answers the
terminal's SIGINT with SIGTERM to every worker within milliseconds).

Outside the training loop (while the model is built, while the final adapter is written) no step is
unsaved, so the first signal stops at once there too.

Launchers give their workers a grace period before SIGKILL: torchrun 30 s (`TORCH_ELASTIC_SHUTDOWN_TIMEOUT`
where the installed torch reads it), deepspeed's launcher 30 s; a container runtime's stop timeout
(`docker stop -t`, Kubernetes' `terminationGracePeriodSeconds`) must exceed one step plus one checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

SIGNALS = (signal.SIGTERM, signal.SIGINT)
REPEAT_S = 2.0


def exit_status(signum: int) -> int:
    """The shell's convention for a process ended by a signal."""
    return 128 + signum


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


class StopNow(BaseException):
    """Raised by a signal that stops the run at once. A BaseException, as KeyboardInterrupt: no
    `except Exception` on the way out may take it for an error of its own and carry on."""

    def __init__(self, signum: int):
        super().__init__(signal_name(signum))
        self.signum = signum


class SignalStop:
    """Installs the handlers of SIGTERM and SIGINT for the length of a `with` block and remembers the
    first signal; `deferring()` marks the part of the run where a signal waits for the step to end."""

    def __init__(self, announce: bool = True):
        self.announce = announce
        self.signum: int | None = None
        self.received_at = 0.0
        self._deferring = False
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str | None:
        return signal_name(self.signum) if self.signum is not None else None

    def __enter__(self) -> "SignalStop":
        if threading.current_thread() is threading.main_thread():  # Python runs handlers there only
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        elif self.announce:
            self._say("signals: not the main thread; SIGTERM and SIGINT keep their usual effect (no checkpoint)")
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @contextlib.contextmanager
    def deferring(self):
        """Inside: a first signal is only recorded, and the loop stops after its step."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False

    def _handle(self, signum: int, frame) -> None:
        now = time.monotonic()
        if self.signum is not None:
            if now - self.received_at < REPEAT_S:
                return  # the same request, passed on by a launcher
            raise StopNow(signum)
        self.signum, self.received_at = signum, now
        if not self._deferring:
            raise StopNow(signum)
        if self.announce:
            self._say(f"{signal_name(signum)}: finishing this step, then writing a checkpoint; send it again "
                      f"(more than {REPEAT_S:.0f} s later) to stop at once without one")

    @staticmethod
    def _say(message: str) -> None:
        # os.write, not print: a handler may run while the main thread is inside a write to stderr (the
        # progress bar), and a buffered stream entered twice raises
        with contextlib.suppress(OSError):
            os.write(2, f"\n{message}\n".encode())
