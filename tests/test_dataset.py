"""Properties of the shipped dataset (data/dataset), checked independently of the builder."""

import hashlib
import re
from collections import Counter

from contract_review.annotation.claudette import LEXGLUE_TRAIN, LEXGLUE_VALIDATION
from contract_review.records import SPLITS
from contract_review.taxonomy import load_taxonomy


def test_every_record_is_valid_against_the_taxonomy(all_records):
    # read_records already validated each record; check the totals make a real dataset
    tax = load_taxonomy()
    assert len(all_records) > 50_000
    types = Counter(t for r in all_records for t in r.clause_types)
    assert set(types) == set(tax.clause_type_ids), "every clause type has examples"
    assert sum(r.is_risk for r in all_records) > 4_000


def test_splits_are_disjoint_by_document(dataset):
    docs = {split: {(r.source, r.doc_id) for r in dataset[split]} for split in SPLITS}
    assert not docs["train"] & docs["validation"]
    assert not docs["train"] & docs["test"]
    assert not docs["validation"] & docs["test"]
    for split in SPLITS:
        assert all(r.split == split for r in dataset[split])


def test_claudette_follows_the_lexglue_company_split(dataset):
    for split, companies in (("train", LEXGLUE_TRAIN), ("validation", LEXGLUE_VALIDATION)):
        got = {r.doc_id for r in dataset[split] if r.source == "claudette"}
        assert got == set(companies) & got and len(got) >= 9


def _words(text):
    return re.findall(r"[a-z0-9]+", text.lower())


def test_cuad_spans_are_mapped_onto_clauses(dataset):
    tax = load_taxonomy()
    test = [r for r in dataset["test"] if r.source == "cuad"]
    labelled = [r for r in test if r.clause_types != ["other"]]
    assert 0.1 < len(labelled) / len(test) < 0.5  # most passages are `other`, as in real contracts
    gov = [r for r in labelled if "governing_law" in r.clause_types]
    assert gov and all(re.search(r"law|govern|construed", r.text, re.I) for r in gov)
    for r in labelled:
        assert r.risk == r.severity and (r.severity == "none") == (r.risk_to == "none")
        assert r.type_labeller in ("cuad", "rules")
        if r.type_labeller == "rules":  # the checklist rules only type clauses CUAD's lawyers left `other`
            assert not any(tax.clause_type(t).cuad for t in r.clause_types)


def test_risk_is_directed_and_graded_within_a_type_not_the_type_in_disguise(dataset):
    """With the gold types a model must not be able to read the risk off them: within a type the
    severity and the bearer vary, following the written criteria."""
    records = [r for split in dataset.values() for r in split]
    for t in ("termination_for_convenience", "cap_on_liability", "non_compete", "indemnification"):
        of_type = [r for r in records if r.clause_types[0] == t and r.source == "cuad"]
        assert len({r.severity for r in of_type}) >= 2, t
        assert {"first_party", "second_party"} <= {r.risk_to for r in of_type}, t
    assert {r.risk_labeller for r in records} == {"rules", "claudette+rules", "graded"}
    graded = [r for r in records if r.risk_labeller == "graded"]
    assert len(graded) >= 1500 and all(r.risk_graded and r.risk_annotations for r in graded)
    tos = [r for r in records if r.source == "claudette" and r.fairness and not r.risk_graded]
    assert all(r.risk_to == "second_party" and r.risk_labeller == "claudette+rules" for r in tos
               if any(load_taxonomy().clause_type(t).claudette for t in r.clause_types))


def test_every_record_names_its_parties_from_its_contracts_one_list(dataset):
    import json

    from contract_review.paths import DATASET_DIR

    lists = {(row["source"], row["doc_id"]): row for row in
             (json.loads(x) for x in (DATASET_DIR / "parties.jsonl").read_text().splitlines())}
    for split in dataset.values():
        for r in split:
            plist = lists[(r.source, r.doc_id)]
            assert r.party_names["first_party"].startswith(plist["parties"][0]["name"] or "[")
            assert r.input.startswith("Parties: first_party: " + r.party_names["first_party"])


def test_the_500_verified_obligation_labels_are_present(all_records):
    verified = [r for r in all_records if r.verified]
    assert len(verified) >= 500
    assert all(r.labeller for r in verified)
    assert {r.split for r in verified} == set(SPLITS)
    assert {r.source for r in verified} == {"cuad", "claudette"}
    assert set(Counter(r.party for r in verified)) == {"first_party", "second_party", "both", "none"}
    for r in verified:
        assert f'"party": "{r.party}"' in r.output
        assert r.party_labeller == r.labeller  # the label is the checker's, and says so


def test_output_is_the_json_of_the_label_fields(dataset):
    for r in dataset["test"][:500]:
        assert r.answer().to_json() == r.output
        assert r.input.endswith(r.text)
        assert hashlib.sha1(r.text.encode()).hexdigest()


