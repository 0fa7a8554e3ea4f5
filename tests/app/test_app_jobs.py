"""Reviews side by side: the fair model queue, cancelling, the time budget."""

from __future__ import annotations

import threading
import time

import pytest
from app_files import SAMPLE

from contract_review.app.ingest import read_text
from contract_review.app.jobs import FairModel, Job, JobPredictor, ReviewStopped
from contract_review.app.predictors import load_predictor
from contract_review.app.review import review_contract
from contract_review.predictor import parse_model


def _batches(fair: FairModel, job: Job, n: int, seconds: float, log: list, name: str) -> None:
    for i in range(n):
        fair.run(job, lambda i=i: (log.append((name, i, time.monotonic())), time.sleep(seconds)))


def test_a_short_review_waits_for_one_batch_of_a_long_one_not_all_of_it():
    fair, log = FairModel(), []
    long_job, short_job = Job(), Job()
    long = threading.Thread(target=_batches, args=(fair, long_job, 30, 0.05, log, "long"))
    long.start()
    time.sleep(0.3)  # the long review is under way
    asked = time.monotonic()
    _batches(fair, short_job, 3, 0.05, log, "short")
    short_done = time.monotonic()
    long.join()
    short = [t for name, _, t in log if name == "short"]
    assert short[0] - asked < 0.2  # it waited for the batch in progress only
    assert short_done - asked < 0.5  # its three batches ran back to back, ahead of the long one
    assert [name for name, _, _ in log].count("long") == 30  # and the long one still finished


def test_a_cancelled_review_stops_before_its_next_batch_and_gives_way():
    fair = FairModel()
    job = Job()
    rules = load_predictor(parse_model("rules"))
    predictor = JobPredictor(rules, job, fair)
    seen = []

    def on_progress(done, total):
        seen.append(done)
        if done >= 32:
            job.cancel()  # the Cancel button, or the page closing

    text = SAMPLE + "\n".join(f"\n{6 + i}. Records. The Supplier shall keep records of shipment {i} for two years."
                              for i in range(100))
    with pytest.raises(ReviewStopped) as err:
        review_contract(read_text(text, "long.txt"), predictor, on_progress)
    assert err.value.why == "cancelled" and seen[-1] == 32 and fair.waiting == 0


def test_a_review_past_its_time_budget_stops_saying_how_far_it_got():
    job = Job(time_limit=0.0)
    job.progress(40, 900)
    time.sleep(0.01)
    with pytest.raises(ReviewStopped, match="time limit of 0 s, after 40 of 900 clauses.*contract-review review"):
        job.check()


def test_a_waiting_review_that_is_cancelled_leaves_the_queue():
    fair = FairModel()
    busy, waiting = Job(), Job()
    started = threading.Event()

    def hold():
        fair.run(busy, lambda: (started.set(), time.sleep(0.6)))

    t = threading.Thread(target=hold)
    t.start()
    started.wait()
    threading.Timer(0.1, waiting.cancel).start()
    t0 = time.monotonic()
    with pytest.raises(ReviewStopped):
        fair.run(waiting, lambda: None)
    assert time.monotonic() - t0 < 0.45  # it did not wait for the batch in progress to end
    t.join()
    assert fair.waiting == 0
