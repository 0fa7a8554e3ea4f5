import random
import re

import pytest
from annotation_records import make_record

from contract_review.annotation.augment import (AugmentationRefused, TranslatorUnavailable, _augmented, augment_records,
                                check_augmentation, load_synonyms, protected_terms, synonym_variant)
from contract_review.cli import main
from contract_review.records import read_records, write_records

CLAUSE = ("Prior to the Effective Date, Beta LLC shall not utilize the Licensed Marks and must obtain the "
          "prior written consent of Acme Corp. pursuant to Section 4.2, in the event that the fee of $10,000 "
          "is not paid within thirty (30) days after March 1, 2020; Beta may commence use upon approval.")
PROTECTED = {"shall", "not", "must", "Effective", "Date", "Licensed", "Marks", "4.2", "$10,000", "thirty", "30",
             "days", "March", "2020", "Beta LLC", "Acme Corp.", "may"}


def test_synonyms_never_touch_protected_terms():
    rec = make_record("cuad/d/0-1", "d", "train", CLAUSE, "second_party")
    terms = ["Acme Corp.", "Beta LLC", "Beta"]
    before = protected_terms(CLAUSE, terms)
    assert PROTECTED <= {t for t in before} | {w for t in before for w in t.split()}
    changed = 0
    for seed in range(30):
        text = synonym_variant(CLAUSE, terms, random.Random(seed), max_changes=5)
        assert protected_terms(text, terms) == before
        changed += text != CLAUSE
        for word in ("shall not", "must", "may", "$10,000", "thirty (30) days", "March 1, 2020", "Acme Corp.", "Beta LLC"):
            assert text.count(word) == CLAUSE.count(word)
    assert changed == 30
    aug, report = augment_records([rec], ["synonym"], per_record=3)
    assert report.made["synonym"] == len(aug) >= 1
    for a in aug:
        assert (a.clause_types, a.party, a.risk, a.split, a.source, a.source_id) == (
            rec.clause_types, rec.party, rec.risk, "train", "augmented", rec.id)


def test_the_shipped_synonym_list_loads_offline_and_contains_no_protected_term():
    table = load_synonyms()
    assert len(table) >= 30 and table["prior to"] == ("before",)
    assert not any(protected_terms(r) for repl in table.values() for r in repl)


def test_a_change_to_a_modal_verb_is_refused():
    rec = make_record("cuad/d/0-1", "d", "train", "Beta LLC shall pay the fees prior to delivery.", "second_party")
    bad = _augmented(rec, rec.text.replace("shall", "may"), "synonym", 0)
    with pytest.raises(AugmentationRefused, match="protected term"):
        check_augmentation(rec, bad)
    wrong_label = _augmented(rec, rec.text.replace("prior to", "before"), "synonym", 0).model_copy(
        update={"party": "first_party"})
    with pytest.raises(AugmentationRefused, match="party changed"):
        check_augmentation(rec, wrong_label)


def test_party_swap_exchanges_names_and_flips_the_label():
    rec = make_record("cuad/d/0-1", "d", "train", "Beta LLC shall pay Acme Corp. the fees within 30 days.", "second_party")
    aug, report = augment_records([rec], ["party_swap"])
    assert report.made["party_swap"] == 1
    (a,) = aug
    assert a.text == "Acme Corp. shall pay Beta LLC the fees within 30 days."
    assert a.party == "first_party" and a.party_names == rec.party_names and a.augmentation == "party_swap"
    assert '"party": "first_party"' in a.output

    risky = make_record("cuad/d/3-4", "d", "train", "Acme Corp. may terminate this Agreement for convenience; Beta LLC "
                        "shall pay the fees.", "second_party", risk="high", risk_to="second_party",
                        types=("termination_for_convenience",), category="termination")
    risky = risky.model_copy(update={"reason": "Terminable for convenience: high for Beta LLC."})
    (s,), _ = augment_records([risky], ["party_swap"])
    assert (s.party, s.risk_to, s.severity) == ("first_party", "first_party", "high")
    assert s.reason == "Terminable for convenience: high for Acme Corp."  # the bearer named in the reason moves too

    both = make_record("cuad/d/1-2", "d", "train", "Acme Corp. and Beta LLC shall each keep records.", "both")
    none = make_record("cuad/d/2-3", "d", "train", "Acme Corp. was founded in Delaware before Beta LLC.", "none")
    out, _ = augment_records([both, none], ["party_swap"])
    assert [(a.source_id, a.party) for a in out] == [(both.id, "both"), (none.id, "none")]


def test_party_swap_is_refused_when_the_obligated_party_is_not_named_by_swapped_terms():
    # "the Licensee" is an alias the record does not define: swapping names alone would leave the duty
    # where it was while the label moved, so the check refuses it
    rec = make_record("cuad/d/0-1", "d", "train", "The Licensee shall pay Acme Corp. a royalty.", "second_party")
    out, report = augment_records([rec], ["party_swap"])
    assert out == [] and report.refused["party_swap"] == 1


def test_no_augmented_record_in_validation_or_test(tmp_path):
    recs = [make_record(f"cuad/{s}/0-1", s, s, "Beta LLC shall pay Acme Corp. prior to delivery.", "second_party")
            for s in ("train", "validation", "test")]
    src = tmp_path / "all.jsonl"
    write_records(src, recs)
    out = tmp_path / "aug.jsonl.gz"
    assert main(["annotate", "augment", "--data", str(src), "--out", str(out), "--methods", "synonym,party_swap",
                          "--with-source"]) == 0
    written = read_records(out)
    assert {r.split for r in written} == {"train"}
    assert {r.source_id for r in written if r.source == "augmented"} == {"cuad/train/0-1"}
    assert sorted(r.augmentation for r in written if r.augmentation) == ["party_swap", "synonym"]
    v = recs[1]
    with pytest.raises(AugmentationRefused, match="only train"):
        check_augmentation(v, _augmented(v, v.text.replace("prior to", "before"), "synonym", 0))


def test_back_translation_without_a_model_says_so(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("CONTRACT_REVIEW_MT_FORWARD", raising=False)
    rec = make_record("cuad/d/0-1", "d", "train", "Beta LLC shall pay the fees.", "second_party")
    with pytest.raises(TranslatorUnavailable, match="needs a translation model"):
        augment_records([rec], ["backtranslate"])
    src = tmp_path / "train.jsonl"
    write_records(src, [rec])
    assert main(["annotate", "augment", "--data", str(src), "--out", str(tmp_path / "o.jsonl"),
                          "--methods", "backtranslate"]) == 2
    assert "none is available offline" in capsys.readouterr().err


class _Echo:
    """A stand-in translator pair: round trip rewrites one phrase, as a real model might."""

    name = "echo"

    def translate(self, texts):
        return [re.sub(r"\bprior to\b", "before", t) for t in texts]


def test_back_translation_goes_through_the_translator_interface_and_the_check():
    from contract_review.annotation.augment import BackTranslator

    ok = make_record("cuad/d/0-1", "d", "train", "Beta LLC shall pay prior to delivery.", "second_party")
    out, report = augment_records([ok], ["backtranslate"], translator=BackTranslator(_Echo(), _Echo()))
    assert [a.augmentation for a in out] == ["backtranslate:echo+echo"] and out[0].text.endswith("before delivery.")
