"""Pull against a stand-in Label Studio (httpx.MockTransport): failures half-way, retries,
adjudication and the split rules, without a server. The real server is in test_ls_round_trip."""

from __future__ import annotations

import httpx
import pytest

from contract_review.annotation.build import _hash_split
from contract_review.annotation.journal import Journal
from contract_review.annotation.label_studio import ClientSettings, LabelStudioClient, ServerUnavailable
from contract_review.annotation.labeling_config import result_from_labels
from contract_review.annotation.pull import pull
from contract_review.prompt import Answer
from contract_review.records import read_records

URL = "http://127.0.0.1:9"
USERS = [{"id": 1, "email": "ann@example.org"}, {"id": 2, "email": "bob@example.org"}, {"id": 3, "email": "lead@example.org"}]


def _task(tid, clause_id, doc_id, text, annotations):
    return {"id": tid, "data": {"clause_id": clause_id, "doc_id": doc_id, "source": "cuad", "start": 0,
                                "end": len(text), "text": text,
                                "party_names": {"first_party": "Acme Corp.", "second_party": "Beta LLC"}},
            "predictions": [{"model_version": "rules-test", "score": 0.4}], "annotations": annotations}


def _ann(aid, who, party, gt=False, when="2026-01-01T10:00:00Z"):
    result = result_from_labels(Answer(("other",), party, "none", "none", "checked"))
    return {"id": aid, "completed_by": who, "result": result, "ground_truth": gt, "was_cancelled": False,
            "updated_at": when, "lead_time": 4.0}


TASKS = [
    _task(1, "cuad/docA/0-40", "docA", "Beta LLC shall pay the fees within 30 days.", [_ann(1, 1, "first_party")]),
    _task(2, "cuad/docV/0-40", "docV", "Acme Corp. shall deliver the goods.",
          [_ann(2, 1, "first_party"), _ann(3, 2, "first_party")]),
    _task(3, "cuad/docNEW/0-30", "docNEW", "Acme Corp. shall keep records.",
          [_ann(4, 1, "first_party"), _ann(5, 2, "both")]),  # a disagreement
    _task(4, "cuad/docT/0-40", "docT", "Neither party shall assign this Agreement.", []),
]


class FakeLabelStudio:
    """Pages of one task; `fail_from_page` makes the server die there (connection refused)."""

    def __init__(self, tasks, fail_from_page=None):
        self.tasks, self.fail_from_page, self.calls = tasks, fail_from_page, 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        path, q = request.url.path, request.url.params
        if path == "/api/projects/":
            return httpx.Response(200, json={"count": 1, "next": None, "results": [{"id": 1, "title": "clauses"}]})
        if path == "/api/users/":
            return httpx.Response(200, json=USERS)
        if path == "/api/tasks/":
            page, size = int(q["page"]), int(q["page_size"])
            if self.fail_from_page and page >= self.fail_from_page:
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(200, json={"total": len(self.tasks), "tasks": self.tasks[(page - 1) * size : page * size]})
        return httpx.Response(404, json={"detail": "not found"})


def _client(fake, sleeps=None):
    settings = ClientSettings(url=URL, token="secret-token-123", tries=3, backoff=0.5)
    sleep = sleeps.append if sleeps is not None else (lambda s: None)
    return LabelStudioClient(settings, transport=httpx.MockTransport(fake), sleep=sleep)


def _pull(client, tmp_path, dataset):
    # one task a page, so that a failure can land half-way through the fetch
    return pull(client, "clauses", Journal(tmp_path / "journal.jsonl"), dataset, tmp_path / "disagreements.jsonl",
                progress=False, page_size=1)


def _bytes(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_server_down_retries_with_backoff_then_names_the_fix(tmp_path, small_dataset):
    sleeps: list[float] = []
    before = _bytes(small_dataset)
    with pytest.raises(ServerUnavailable) as err:
        _pull(_client(FakeLabelStudio(TASKS, fail_from_page=1), sleeps), tmp_path, small_dataset)
    assert f"Label Studio at {URL} is not answering after 3 tries" in str(err.value)
    assert "contract-review annotate server start" in str(err.value)
    assert "secret-token-123" not in str(err.value)
    assert sleeps == [0.5, 1.0]
    assert _bytes(small_dataset) == before


def test_pull_that_fails_half_way_loses_nothing_and_repeats_cleanly(tmp_path, small_dataset):
    before = _bytes(small_dataset)
    with pytest.raises(ServerUnavailable):
        _pull(_client(FakeLabelStudio(TASKS, fail_from_page=3)), tmp_path, small_dataset)
    journal = Journal(tmp_path / "journal.jsonl")
    assert [e["annotation_id"] for e in journal.read()] == [1, 2, 3]  # pages 1-2 kept
    assert _bytes(small_dataset) == before  # the dataset is only written after a complete fetch

    report = _pull(_client(FakeLabelStudio(TASKS)), tmp_path, small_dataset)
    assert report.new_entries == 2  # only what the failed pull had not seen
    assert sorted(e["annotation_id"] for e in journal.read()) == [1, 2, 3, 4, 5]

    again = _pull(_client(FakeLabelStudio(TASKS)), tmp_path, small_dataset)
    assert again.new_entries == 0 and again.merge.unchanged == 2 and not again.merge.written


def test_annotations_merge_by_document_with_annotator_time_and_model_version(tmp_path, small_dataset):
    report = _pull(_client(FakeLabelStudio(TASKS)), tmp_path, small_dataset)
    splits = {s: {r.id: r for r in read_records(small_dataset / f"{s}.jsonl.gz", allow_empty=True)}
              for s in ("train", "validation", "test")}
    a = splits["train"]["cuad/docA/0-40"]  # replaced in place, same split
    assert (a.source, a.party, a.annotator, a.model_version) == ("annotation", "first_party", "ann@example.org", "rules-test")
    assert a.annotated_at == "2026-01-01T10:00:00Z"
    v = splits["validation"]["cuad/docV/0-40"]  # two annotators who agree
    assert v.annotator == "ann@example.org,bob@example.org"
    assert "cuad/docNEW/0-30" not in {i for s in splits.values() for i in s}  # disagreement: held back
    assert [d["clause_id"] for d in report.resolution.disagreements] == ["cuad/docNEW/0-30"]
    assert report.resolution.disagreements[0]["fields"] == ["party"]
    assert (tmp_path / "disagreements.jsonl").read_text().count("docNEW") == 1
    party = {r.field: r for r in report.agreement}["party"]
    assert party.items == 2 and party.percent_agreement == 0.5


def test_adjudicated_annotation_wins_and_a_new_document_gets_the_hash_split(tmp_path, small_dataset):
    tasks = [dict(t) for t in TASKS]
    tasks[2] = dict(tasks[2], annotations=tasks[2]["annotations"] + [
        _ann(6, 3, "second_party", gt=True, when="2026-01-02T09:00:00Z")])
    _pull(_client(FakeLabelStudio(tasks)), tmp_path, small_dataset)
    split = _hash_split("docNEW")
    recs = {r.id: r for r in read_records(small_dataset / f"{split}.jsonl.gz", allow_empty=True)}
    rec = recs["cuad/docNEW/0-30"]
    assert (rec.party, rec.annotator, rec.split) == ("second_party", "lead@example.org", split)
