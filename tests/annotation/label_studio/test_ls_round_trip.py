"""End to end against a real Label Studio: push with pre-annotations, annotate through the API
as the annotation screen does, pull into the dataset, push again (no duplicates), and pull
against the stopped server (fails clearly, loses nothing). Uses the users' commands."""

from __future__ import annotations

import pytest
from annotation_records import make_record

from contract_review.annotation.journal import Journal
from contract_review.annotation.label_studio import ClientSettings, LabelStudioClient
from contract_review.annotation.labeling_config import result_from_labels
from contract_review.prompt import Answer
from contract_review.records import read_records, write_records

pytestmark = pytest.mark.timeout(900)


def _dataset_ids(d):
    return {s: {r.id: r for r in read_records(next(d.glob(f"{s}.jsonl*")), allow_empty=True)}
            for s in ("train", "validation", "test")}


def _no_secret(server, *outputs):
    for secret in (server.env["CONTRACT_REVIEW_LS_TOKEN"], server.env["CONTRACT_REVIEW_LS_PASSWORD"]):
        for out in outputs:
            assert secret not in out


def test_round_trip_through_a_real_label_studio(ls_server, small_dataset, tmp_path):
    server = ls_server
    records = [r for s, recs in _dataset_ids(small_dataset).items() for r in recs.values()]
    records.append(make_record("user/docNEW/0-33", "docNEW", "train", "Acme Corp. shall maintain insurance.",
                               "first_party", source="user"))
    clauses = tmp_path / "clauses.jsonl"
    write_records(clauses, records)
    journal = tmp_path / "annotation" / "journal.jsonl"
    push_args = ("push", "--data", str(clauses), "--project", "round trip", "--batch", "10", "--overlap", "0.4",
                 "--quiet")

    # 1. push: a project from the taxonomy, tasks with pre-annotations
    pushed = server.command(*push_args)
    assert pushed.returncode == 0, pushed.stderr
    assert "5 tasks imported" in pushed.stdout and "created" in pushed.stdout
    client = LabelStudioClient(ClientSettings.from_env(server.env))
    project = client.find_project("round trip")
    tasks = [t for page in client.iter_task_pages(project["id"]) for t in page]
    assert len(tasks) == 5
    for t in tasks:
        (pred,) = t["predictions"]
        assert pred["model_version"].startswith("rules-") and 0 < pred["score"] <= 1
        assert t["data"]["parties"].startswith("first_party")
    overlap = [t for t in tasks if t["data"]["annotators"] == 2]
    assert len(overlap) == 2 and all(t["overlap"] == 2 for t in overlap)

    # 2. annotators correct the pre-annotations
    ann = client.create_user("ann@example.org")["id"]
    bob = client.create_user("bob@example.org")["id"]
    by_clause = {t["data"]["clause_id"]: t for t in tasks}
    corrected = Answer(("insurance",), "first_party", "medium", "liability", "Insurance duty on Acme.")
    for cid, t in by_clause.items():
        result = result_from_labels(corrected) if cid == "user/docNEW/0-33" else t["predictions"][0]["result"]
        client.create_annotation(t["id"], result, completed_by=ann, lead_time=12.5)
        if t["data"]["annotators"] == 2:
            client.create_annotation(t["id"], result, completed_by=bob, lead_time=9.0)

    # 3. pull: into the dataset by document
    pulled = server.command("pull", "--project", "round trip", "--dataset", str(small_dataset),
                            "--journal", str(journal), "--quiet")
    assert pulled.returncode == 0, pulled.stderr
    assert "5 resolved, 0 disagreements" in pulled.stdout
    data = _dataset_ids(small_dataset)
    where = {rid: s for s, recs in data.items() for rid in recs}
    assert where["cuad/docA/0-40"] == "train" and where["cuad/docV/0-40"] == "validation"
    assert where["cuad/docT/0-40"] == "test"  # documents stay in their split
    new = data[where["user/docNEW/0-33"]]["user/docNEW/0-33"]
    assert (new.source, new.clause_types, new.risk, new.annotator) == ("annotation", ["insurance"], "medium",
                                                                       "ann@example.org")
    assert new.model_version.startswith("rules-") and new.annotated_at
    for cid, t in by_clause.items():
        rec = data[where[cid]][cid]
        assert rec.source == "annotation"
        want = "ann@example.org,bob@example.org" if t["data"]["annotators"] == 2 else "ann@example.org"
        assert rec.annotator == want

    # 4. a second push creates no duplicates
    again = server.command(*push_args)
    assert again.returncode == 0 and "0 tasks imported" in again.stdout and "5 clauses already there" in again.stdout
    assert sum(len(p) for p in client.iter_task_pages(project["id"], fields="task_only")) == 5

    # 5. the server stops: a pull fails clearly and loses nothing
    journaled = Journal(journal).read()
    before = {p.name: p.read_bytes() for p in small_dataset.iterdir()}
    server.stop()
    down = server.command("pull", "--project", "round trip", "--dataset", str(small_dataset),
                          "--journal", str(journal), "--quiet")
    assert down.returncode == 2
    assert f"Label Studio at {server.url} is not answering after 3 tries" in down.stderr
    assert "contract-review annotate server start" in down.stderr and "nothing was lost" in down.stderr
    assert Journal(journal).read() == journaled and len(journaled) == 7
    assert {p.name: p.read_bytes() for p in small_dataset.iterdir()} == before
    _no_secret(server, pushed.stdout, pushed.stderr, pulled.stdout, pulled.stderr, down.stdout, down.stderr)
