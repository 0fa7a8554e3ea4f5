"""Corrections: saved locally at once; sent to Label Studio with the `annotate push` code as
annotations over the model's pre-annotations, never twice.

The Label Studio here is an in-memory fake behind `httpx.MockTransport` speaking the REST
endpoints `annotation.label_studio.LabelStudioClient` uses; the client and `push` themselves
are the real ones (tested against a real server in tests/annotation)."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from app_files import SAMPLE

from contract_review.annotation.label_studio import ClientSettings, LabelStudioClient
from contract_review.annotation.labeling_config import labels_from_result
from contract_review.app.corrections import CorrectionStore, correction_from, send_to_label_studio
from contract_review.app.ingest import read_text
from contract_review.app.predictors import load_predictor
from contract_review.app.review import apply_correction, review_contract
from contract_review.predictor import parse_model


class FakeLabelStudio:
    def __init__(self):
        self.projects: dict[int, dict] = {}
        self.tasks: dict[int, dict] = {}
        self.annotations: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        body = json.loads(request.content) if request.content else None
        if path == "/api/projects/" and method == "GET":
            title = request.url.params.get("title")
            return httpx.Response(200, json={"results": [p for p in self.projects.values() if p["title"] == title],
                                             "next": None})
        if path == "/api/projects/" and method == "POST":
            pid = len(self.projects) + 1
            self.projects[pid] = {"id": pid, **body}
            return httpx.Response(201, json=self.projects[pid])
        if m := re.fullmatch(r"/api/projects/(\d+)/", path):
            self.projects[int(m[1])].update(body or {})
            return httpx.Response(200, json=self.projects[int(m[1])])
        if m := re.fullmatch(r"/api/projects/(\d+)/import", path):
            ids = []
            for t in body:
                tid = len(self.tasks) + 1
                self.tasks[tid] = {"id": tid, "project": int(m[1]), "overlap": 1, **t}
                ids.append(tid)
            return httpx.Response(201, json={"task_ids": ids})
        if path == "/api/tasks/" and method == "GET":
            pid = int(request.url.params["project"])
            tasks = [t for t in self.tasks.values() if t["project"] == pid]
            return httpx.Response(200, json={"tasks": tasks, "total": len(tasks)})
        if m := re.fullmatch(r"/api/tasks/(\d+)/annotations/", path):
            ann = {"id": len(self.annotations) + 1, "task": int(m[1]), **body}
            self.annotations.append(ann)
            return httpx.Response(201, json=ann)
        if m := re.fullmatch(r"/api/tasks/(\d+)/", path):
            self.tasks[int(m[1])].update(body)
            return httpx.Response(200, json=self.tasks[int(m[1])])
        return httpx.Response(404, json={"detail": f"no route {method} {path}"})


@pytest.fixture
def corrected(tmp_path):
    review = review_contract(read_text(SAMPLE, "msa.txt"), load_predictor(parse_model("rules")))
    store = CorrectionStore(tmp_path / "corrections.jsonl")
    f = next(f for f in review.findings if "non_compete" in f.clause_types)
    apply_correction(review, f.index, ["non_compete", "exclusivity"], "second_party", "high", "Bars Beta from rivals.")
    store.add(correction_from(review, f, reviewer="lawyer1"))
    return review, store, f


def test_correction_is_saved_at_once_privately(corrected):
    review, store, f = corrected
    lines = store.path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    saved = json.loads(lines[0])
    assert saved["text"] == f.text and saved["after"]["party"] == "second_party"
    assert saved["before"]["risk"] == "high" and saved["after"]["clause_types"] == ["non_compete", "exclusivity"]
    assert saved["clause_id"] == f"user/{review.contract['doc_id']}/{f.start}-{f.end}"
    assert store.path.stat().st_mode & 0o077 == 0  # clause text: readable by its owner only


def test_latest_correction_of_a_clause_wins(corrected):
    review, store, f = corrected
    apply_correction(review, f.index, ["non_compete"], "second_party", "medium", "")
    store.add(correction_from(review, f))
    assert len(store.all()) == 2
    [latest] = store.latest()
    assert latest.after["risk"] == "medium"


def test_send_pushes_task_with_model_labels_and_adds_the_fix_as_annotation(corrected):
    review, store, f = corrected
    fake = FakeLabelStudio()
    client = LabelStudioClient(ClientSettings(url="http://ls.test", token="t" * 10, tries=1),
                               transport=httpx.MockTransport(fake))
    report = send_to_label_studio(store, client)
    assert report.sent == 1
    [task] = fake.tasks.values()
    assert task["data"]["clause_id"] == store.all()[0].clause_id and task["data"]["text"] == f.text
    assert task["data"]["party_names"]["second_party"] == "Beta Logistics LLC"
    predicted = labels_from_result(task["predictions"][0]["result"])
    assert predicted.risk == f.original["risk"]  # the pre-annotation is what the model said
    [ann] = fake.annotations
    fixed = labels_from_result(ann["result"])
    assert fixed.party == "second_party" and set(fixed.clause_types) == {"non_compete", "exclusivity"}
    assert fixed.reason == "Bars Beta from rivals."

    again = send_to_label_studio(store, client)  # nothing new: nothing sent twice
    assert again.sent == 0 and again.already_sent == 1 and len(fake.annotations) == 1 and len(fake.tasks) == 1


def test_send_to_a_down_server_keeps_corrections(corrected):
    from contract_review.annotation.label_studio import LabelStudioError

    _, store, _ = corrected
    down = httpx.MockTransport(lambda r: httpx.Response(503))
    client = LabelStudioClient(ClientSettings(url="http://ls.test", token="t" * 10, tries=2, backoff=0.0),
                               transport=down, sleep=lambda s: None)
    with pytest.raises(LabelStudioError, match="not answering"):
        send_to_label_studio(store, client)
    assert len(store.unsent()) == 1
