"""Running reviews side by side: one model shared fairly, a time budget, and cancelling.

    fair = FairModel()                                  # one per server process
    job = Job(time_limit=600)                           # one per review
    predictor = JobPredictor(model, job, fair)          # what `review_contract` is given
    job.cancel()                                        # from the Cancel button, or the page closing

A server runs several reviews at once (`serve --concurrency`, the reviews in progress), but
the model labels one batch of clauses at a time: two batches at once would only split the
CPU between them. `FairModel` hands the model to the waiting review that has had the fewest
batches so far, so a one-page review started behind a 500-clause one waits for one batch
of it (`review.BATCH` clauses), not for all of it.

A `Job` is checked before every batch: a cancelled review, or one past its time budget,
stops there with `ReviewStopped` saying which, and its place at the model goes to the others.
Progress (clauses labelled, clauses in all) is kept on the job for the page to show.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from contract_review.predictor import ClauseInput, ClausePrediction, Predictor

T = TypeVar("T")
_POLL_S = 0.2  # how often a waiting review checks whether it was cancelled


class ReviewStopped(RuntimeError):
    """A review stopped before its end: `why` is "cancelled" or "time"."""

    def __init__(self, why: str, message: str):
        super().__init__(message)
        self.why = why


@dataclass
class Job:
    """One review's state as the page and the scheduler see it."""

    time_limit: float | None = None  # seconds from start; None: no limit (the command line)
    started: float = field(default_factory=time.monotonic)
    done: int = 0  # clauses labelled
    total: int = 0  # clauses to label
    stage: str = "reading"  # reading | waiting | labelling | summary | done
    batches: int = 0  # batches the model has run for this job
    _cancelled: threading.Event = field(default_factory=threading.Event, repr=False)
    id: int = field(default_factory=lambda: next(_ids))

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def check(self) -> None:
        """Raise `ReviewStopped` if the review was cancelled or is past its time budget."""
        if self.cancelled:
            raise ReviewStopped("cancelled", "The review was cancelled.")
        if self.time_limit is not None and self.elapsed > self.time_limit:
            raise ReviewStopped(
                "time", f"The review was stopped at its time limit of {self.time_limit:.0f} s, after {self.done} of "
                        f"{self.total} clauses, so that other reviews are not held up. Review a contract this long "
                        "with `contract-review review FILE --out DIR` (no time limit), or ask the operator to raise "
                        "`serve --time-limit`.")

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        self.stage = "labelling"


_ids = itertools.count(1)


class FairModel:
    """One model, many reviews: each batch goes to the waiting review with the fewest batches so far
    (ties: the one that asked first)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = False
        self._waiting: dict[int, tuple[int, int]] = {}  # job id -> (batches so far, ticket)
        self._tickets = itertools.count()

    def run(self, job: Job, fn: Callable[[], T]) -> T:
        with self._cond:
            self._waiting[job.id] = (job.batches, next(self._tickets))
            job.stage = "waiting"
            try:
                while self._busy or min(self._waiting, key=self._waiting.__getitem__) != job.id:
                    job.check()
                    self._cond.wait(_POLL_S)
                job.check()
            except ReviewStopped:
                del self._waiting[job.id]
                self._cond.notify_all()
                raise
            del self._waiting[job.id]
            self._busy = True
            job.stage = "labelling"
        try:
            return fn()
        finally:
            with self._cond:
                self._busy = False
                job.batches += 1
                self._cond.notify_all()

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)


class JobPredictor:
    """A predictor that runs its batches through a `FairModel` and stops when its job says so."""

    def __init__(self, inner: Predictor, job: Job, fair: FairModel):
        self.inner, self.job, self.fair = inner, job, fair
        self.name, self.model_version = inner.name, inner.model_version

    def predict(self, clauses: Sequence[ClauseInput], progress: bool = False) -> list[ClausePrediction]:
        self.job.check()
        return self.fair.run(self.job, lambda: self.inner.predict(clauses, progress))
