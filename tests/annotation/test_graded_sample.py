"""The graded-set sampler: stratified by type, shared across splits, capped per contract, seeded."""

import json

from annotation_records import make_record

from contract_review.annotation.sample import SampleConfig, batch_lines, draw_sample, write_sample
from contract_review.records import write_records

TYPES = ["other"] * 6 + ["indemnification", "cap_on_liability", "non_compete"]


def _records():
    out = []
    for split, docs in (("train", 8), ("validation", 3), ("test", 3)):
        for d in range(docs):
            doc = f"{split}-doc{d}"
            for i, t in enumerate(TYPES * 2):
                out.append(make_record(f"cuad/{doc}/{i * 100}-{i * 100 + 50}", doc, split, f"Clause {i} of {doc}.",
                                       types=(t,), start=i * 100))
    return out


def test_every_type_is_drawn_from_every_split_with_at_most_two_per_contract_and_type():
    records = _records()
    cfg = SampleConfig(size=120, seed=3, min_per_type=10, per_document=2)
    sample = draw_sample(records, cfg)
    assert len(sample.records) == 120 and len({r.id for r in sample.records}) == 120
    for t in ("other", "indemnification", "cap_on_liability", "non_compete"):
        drawn = sample.drawn[t]
        assert sum(drawn.values()) >= 10 and all(drawn[s] > 0 for s in ("train", "validation", "test")), (t, drawn)
    per_doc_type = {}
    for r in sample.records:
        per_doc_type[(r.doc_id, r.clause_types[0])] = per_doc_type.get((r.doc_id, r.clause_types[0]), 0) + 1
    # two per contract while the contracts suffice; `other` needs more than 14 contracts x 2 and lifts the cap last
    assert max(n for (_, t), n in per_doc_type.items() if t != "other") <= 2
    assert max(n for (_, t), n in per_doc_type.items() if t == "other") > 2
    # the square root allocation gives `other` (6x the clauses of a rare type) more, but not 6x
    assert sum(sample.drawn["indemnification"].values()) < sum(sample.drawn["other"].values()) < \
        6 * sum(sample.drawn["indemnification"].values())
    again = draw_sample(records, cfg)
    assert [r.id for r in again.records] == [r.id for r in sample.records]
    assert [r.id for r in draw_sample(records, cfg.model_copy(update={"seed": 4})).records] != \
        [r.id for r in sample.records]


def test_batches_keep_a_contract_together_show_its_parties_and_context_and_no_label(tmp_path):
    d = tmp_path / "ds"
    records = _records()
    for split in ("train", "validation", "test"):
        write_records(d / f"{split}.jsonl.gz", [r for r in records if r.split == split])
    manifest = write_sample(d, tmp_path / "out", SampleConfig(size=60, seed=0, min_per_type=5, batch_size=25))
    assert manifest["clauses"] == 60 and "square root" in manifest["how"]
    lines = [json.loads(x) for f in sorted((tmp_path / "out" / "batches").glob("*.jsonl"))
             for x in f.read_text().splitlines()]
    assert len(lines) == 60
    docs_per_batch = {}
    for f in sorted((tmp_path / "out" / "batches").glob("*.jsonl")):
        for x in f.read_text().splitlines():
            docs_per_batch.setdefault(json.loads(x)["doc_id"], set()).add(f.name)
    assert all(len(batches) == 1 for batches in docs_per_batch.values())
    line = lines[0]
    assert {"id", "text", "context", "parties", "party_names"} <= set(line)
    assert not {"risk_to", "severity", "clause_types", "party", "reason"} & set(line)
    assert line["parties"][0]["name"] == "Acme Corp." and line["context_from"] in ("previous clause", "none")
    assert json.loads((tmp_path / "out" / "sample.json").read_text())["config"]["seed"] == 0


def test_context_is_the_clause_before_when_the_record_has_none():
    records = _records()[:9]
    sample = draw_sample(records, SampleConfig(size=9, seed=0, min_per_type=1))
    lines = {x["id"]: x for x in batch_lines(sample, records, {})}
    second = records[1]
    assert lines[second.id]["context"] == records[0].text and lines[second.id]["context_from"] == "previous clause"
