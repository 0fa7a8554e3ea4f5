"""Graded records from a journal (no server): agreement, adjudication, kappa, and the build keeps them."""

import json

from annotation_records import make_record

from contract_review.annotation.graded import merge_graded, resolve_graded
from contract_review.annotation.graded_labels import apply_graded
from contract_review.annotation.journal import Journal
from contract_review.annotation.labeling_config import labels_from_result, risk_result
from contract_review.records import read_records, write_records

TEXTS = {"cuad/docA/0-40": "Acme may terminate this Agreement at will.",
         "cuad/docA/50-90": "Beta shall indemnify Acme against all claims.",
         "cuad/docT/0-40": "Neither party shall be liable for consequential loss."}


def _entry(aid, cid, who, risk_to, severity, gt=False, types=None):
    result = risk_result(risk_to, severity, f"{who}'s reason", types)
    return {"server": "http://ls", "project_id": 1, "task_id": aid, "annotation_id": aid, "updated_at": f"2026-01-0{aid % 9 + 1}",
            "annotator": who, "annotator_id": 1, "ground_truth": gt, "was_cancelled": False, "lead_time": 1.0,
            "model_version": None, "clause": {"clause_id": cid, "text": TEXTS[cid]}, "journaled_at": "x",
            "labels": labels_from_result(result).as_dict(), "error": None}


ENTRIES = [
    _entry(1, "cuad/docA/0-40", "ann-a", "second_party", "high", types=["termination_for_convenience"]),
    _entry(2, "cuad/docA/0-40", "ann-b", "second_party", "high", types=["termination_for_convenience"]),
    _entry(3, "cuad/docA/50-90", "ann-a", "second_party", "high"),
    _entry(4, "cuad/docA/50-90", "ann-b", "second_party", "medium"),
    _entry(5, "cuad/docT/0-40", "ann-a", "both", "low"),
    _entry(6, "cuad/docT/0-40", "ann-b", "first_party", "low"),
    _entry(7, "cuad/docT/0-40", "lead", "both", "low", gt=True),
]


def test_agreed_and_adjudicated_clauses_are_graded_and_disagreements_wait():
    res = resolve_graded(ENTRIES)
    graded = {g.clause_id: g for g in res.graded}
    assert set(graded) == {"cuad/docA/0-40", "cuad/docT/0-40"}
    assert graded["cuad/docA/0-40"].adjudicator == "agreement"
    assert (graded["cuad/docT/0-40"].adjudicator, graded["cuad/docT/0-40"].risk_to) == ("lead", "both")
    assert [d["clause_id"] for d in res.disagreements] == ["cuad/docA/50-90"]
    assert len(res.overlapped) == 3


def test_pull_writes_graded_records_the_graded_file_and_kappa_and_the_build_keeps_them(tmp_path):
    d = tmp_path / "ds"
    recs = {cid: make_record(cid, cid.split("/")[1], "test" if "docT" in cid else "train", text,
                             types=("cap_on_liability",) if "docT" in cid else ("other",), start=int(cid.split("/")[2].split("-")[0]))
            for cid, text in TEXTS.items()}
    write_records(d / "train.jsonl.gz", [r for r in recs.values() if r.split == "train"])
    write_records(d / "test.jsonl.gz", [r for r in recs.values() if r.split == "test"])
    write_records(d / "validation.jsonl.gz", [])
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append(ENTRIES)
    graded_file = tmp_path / "risk_graded.jsonl"
    report = merge_graded(journal, d, graded_file, tmp_path / "disagreements.jsonl")
    kappa = {a.field: a for a in report.agreement}
    assert kappa["severity"].items == 3 and kappa["severity"].percent_agreement == 2 / 3
    assert kappa["risk_to"].percent_agreement == 2 / 3
    test = {r.id: r for r in read_records(d / "test.jsonl.gz")}
    g = test["cuad/docT/0-40"]
    assert (g.risk_graded, g.risk_adjudicator, g.risk_to, g.severity, g.risk, g.risk_labeller) == (
        True, "lead", "both", "low", "low", "graded")
    assert [(a.annotator, a.risk_to) for a in g.risk_annotations] == [("ann-a", "both"), ("ann-b", "first_party")]
    assert json.loads(g.output)["risk_to"] == "both" and g.clause_types == ["cap_on_liability"]
    train = {r.id: r for r in read_records(d / "train.jsonl.gz")}
    assert train["cuad/docA/0-40"].risk_adjudicator == "agreement"
    assert train["cuad/docA/0-40"].risk_annotations[0].clause_types == ["termination_for_convenience"]
    assert not train["cuad/docA/50-90"].risk_graded  # still disputed
    assert len(graded_file.read_text().splitlines()) == 2
    assert json.loads((tmp_path / "disagreements.jsonl").read_text())["clause_id"] == "cuad/docA/50-90"

    # the build applies the graded file to freshly built records, and refuses nothing it can match
    fresh = [r.model_dump(exclude_none=True) for r in recs.values()]
    fresh[2]["text"] = "Neither party shall be liable for indirect loss."  # this clause's text changed: stale
    applied, stale = apply_graded(fresh, graded_file)
    assert (applied, stale) == (1, 1)
    assert fresh[0]["risk_graded"] and fresh[0]["risk_labeller"] == "graded"
