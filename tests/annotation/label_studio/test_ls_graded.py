"""The graded set against a real Label Studio: push the sample, two annotators' label files as two users'
annotations, disagreements marked and listed in a Data Manager tab, an adjudication as ground truth, and
`annotate pull --graded` writing graded records with Cohen's kappa. Uses the users' commands."""

from __future__ import annotations

import json

import pytest
from annotation_records import make_record

from contract_review.annotation.label_studio import ClientSettings, LabelStudioClient
from contract_review.annotation.sample import SampleConfig, write_sample
from contract_review.records import read_records, write_records

pytestmark = pytest.mark.timeout(900)

CLAUSES = {
    "cuad/docA/0-60": ("train", "Acme Corp. may terminate this Agreement for convenience without notice.",
                       "termination_for_convenience"),
    "cuad/docA/100-160": ("train", "Beta LLC shall indemnify Acme Corp. against all claims.", "indemnification"),
    "cuad/docV/0-60": ("validation", "Neither party shall be liable for indirect or consequential loss.",
                       "cap_on_liability"),
    "cuad/docT/0-60": ("test", "This Agreement is governed by the laws of the State of New York.", "governing_law"),
}


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_graded_set_round_trip_through_a_real_label_studio(ls_server, tmp_path):
    server = ls_server
    d = tmp_path / "dataset"
    recs = [make_record(cid, cid.split("/")[1], split, text, types=(t,), start=int(cid.split("/")[2].split("-")[0]))
            for cid, (split, text, t) in CLAUSES.items()]
    for split in ("train", "validation", "test"):
        write_records(d / f"{split}.jsonl.gz", [r for r in recs if r.split == split])
    write_sample(d, tmp_path / "sample", SampleConfig(size=4, seed=0, min_per_type=1))
    project = "graded test"

    pushed = server.command("graded", "push", "--sample", str(tmp_path / "sample"), "--project", project)
    assert pushed.returncode == 0, pushed.stderr
    assert "4 tasks imported" in pushed.stdout
    again = server.command("graded", "push", "--sample", str(tmp_path / "sample"), "--project", project)
    assert "0 tasks imported, 4 already there" in again.stdout

    a = {"cuad/docA/0-60": ("second_party", "high"), "cuad/docA/100-160": ("second_party", "high"),
         "cuad/docV/0-60": ("both", "low"), "cuad/docT/0-60": ("both", "low")}
    b = dict(a, **{"cuad/docA/100-160": ("second_party", "medium"), "cuad/docT/0-60": ("none", "none")})
    for name, labels in (("ai-annotator-1", a), ("ai-annotator-2", b)):
        rows = [{"id": cid, "risk_to": rt, "severity": sev, "reason": f"{name} read it",
                 "clause_types": [CLAUSES[cid][2]]} for cid, (rt, sev) in labels.items()]
        imported = server.command("graded", "import", "--labels", str(_write(tmp_path / f"{name}.jsonl", rows)),
                                  "--annotator", name, "--project", project)
        assert imported.returncode == 0, imported.stderr
        assert f"4 annotations filed as {name}" in imported.stdout
    repeat = server.command("graded", "import", "--labels", str(tmp_path / "ai-annotator-1.jsonl"),
                            "--annotator", "ai-annotator-1", "--project", project)
    assert "0 annotations filed" in repeat.stdout and "4 already there" in repeat.stdout

    bad = _write(tmp_path / "bad.jsonl", [{"id": "cuad/docA/0-60", "risk_to": "none", "severity": "high",
                                           "reason": "r"}])
    refused = server.command("graded", "import", "--labels", str(bad), "--annotator", "x", "--project", project)
    assert refused.returncode == 2 and f"{bad}:1: " in refused.stderr and "has no bearer" in refused.stderr

    # two independent users' annotations sit on each task
    client = LabelStudioClient(ClientSettings.from_env(server.env))
    pid = client.find_project(project)["id"]
    tasks = {t["data"]["clause_id"]: t for page in client.iter_task_pages(pid) for t in page}
    users = client.users()
    for t in tasks.values():
        authors = sorted(users[ann["completed_by"]] for ann in t["annotations"])
        assert authors == ["ai-annotator-1@annotators.local", "ai-annotator-2@annotators.local"]

    dis = server.command("graded", "disagreements", "--project", project, "--out", str(tmp_path / "dis.jsonl"))
    assert dis.returncode == 0, dis.stderr
    assert "2 disagreements" in dis.stdout and "cuad/docA/100-160  differ on severity" in dis.stdout
    assert "cuad/docT/0-60  differ on risk_to, severity" in dis.stdout
    tasks = {t["data"]["clause_id"]: t for page in client.iter_task_pages(pid) for t in page}
    assert tasks["cuad/docA/100-160"]["data"]["risk_disagreement"] == "severity"
    assert tasks["cuad/docA/0-60"]["data"]["risk_disagreement"] == ""
    views = client.request("GET", "/api/dm/views/", params={"project": pid})
    assert [v["data"]["title"] for v in views if v["data"].get("title") == "Risk disagreements"]

    adjudication = _write(tmp_path / "lead.jsonl", [
        {"id": "cuad/docA/100-160", "risk_to": "second_party", "severity": "high", "reason": "one-way, any claim"}])
    adj = server.command("graded", "import", "--labels", str(adjudication), "--annotator", "lead", "--adjudication",
                         "--project", project)
    assert adj.returncode == 0 and "1 adjudications (ground truth) filed as lead" in adj.stdout

    journal = tmp_path / "annotation" / "journal.jsonl"
    graded_file = tmp_path / "risk_graded.jsonl"
    pulled = server.command("pull", "--graded", "--project", project, "--dataset", str(d), "--journal", str(journal),
                            "--graded-file", str(graded_file), "--quiet")
    assert pulled.returncode == 0, pulled.stderr
    assert "graded clauses: 3 (2 agreed, 1 adjudicated); 1 disagreements waiting" in pulled.stdout
    assert "severity" in pulled.stdout and "risk_to" in pulled.stdout and "kappa" in pulled.stdout
    records = {r.id: r for s in ("train", "validation", "test") for r in read_records(d / f"{s}.jsonl.gz")}
    settled = records["cuad/docA/100-160"]
    assert (settled.risk_graded, settled.risk_adjudicator, settled.severity, settled.risk_to) == (
        True, "lead", "high", "second_party")
    assert sorted(a.annotator for a in settled.risk_annotations) == ["ai-annotator-1", "ai-annotator-2"]
    assert records["cuad/docA/0-60"].risk_adjudicator == "agreement"
    assert not records["cuad/docT/0-60"].risk_graded  # still waiting for its adjudication
    agreement = {row["field"]: row for row in json.loads((journal.with_name("agreement.json")).read_text())}
    assert agreement["severity"]["items"] == 4 and agreement["risk_to"]["percent_agreement"] == 0.75
    assert len(graded_file.read_text().splitlines()) == 3
