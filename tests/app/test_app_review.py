"""The shared review function, the summary, corrections in a review, exports and the CLI."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest
from app_files import SAMPLE

from contract_review.annotation.segment import segment
from contract_review.app.export import FORMATS, write_exports
from contract_review.app.ingest import read_contract, read_text
from contract_review.app.predictors import load_predictor
from contract_review.app.review import Review, apply_correction, review_contract
from contract_review.paths import REPO_ROOT
from contract_review.predictor import PredictorError, describe_model, parse_model
from contract_review.taxonomy import load_taxonomy


@pytest.fixture(scope="module")
def rules():
    return load_predictor(parse_model("rules"))


@pytest.fixture
def sample_review(rules) -> Review:
    return review_contract(read_text(SAMPLE, "msa.txt"), rules)


def test_review_uses_the_dataset_segmenter_with_exact_offsets(cuad_test_contract, rules):
    contract = read_contract(cuad_test_contract)
    seen = []
    review = review_contract(contract, rules, on_progress=lambda done, total: seen.append((done, total)))
    segs = [s for s in segment(contract.text) if s.is_clause]
    assert [(f.start, f.end) for f in review.findings] == [(s.start, s.end) for s in segs]
    # a finding's text is its clause's words, page furniture cut out; its span is where it is written
    assert [(f.text, f.number, f.heading, f.context) for f in review.findings] == \
        [(s.clean, s.number, s.heading, s.context) for s in segs]
    assert all(f.text.split()[0] in contract.text[f.start : f.end] for f in review.findings)
    assert seen[0] == (0, len(segs)) and seen[-1] == (len(segs), len(segs))  # progress reaches the end
    s = review.summary
    assert sum(s["risk_counts"].values()) == s["clauses"] == len(segs)
    assert s["risk_clauses"] == sum(f.is_risk for f in review.findings) > 0
    assert [t["risk"] for t in s["top_risks"]] == sorted((t["risk"] for t in s["top_risks"]),
                                                         key=["high", "medium"].index)


def test_parties_are_named_as_in_the_contract(sample_review):
    assert sample_review.parties["first_party"] == "Acme Widgets Corp."
    assert sample_review.parties["second_party"] == "Beta Logistics LLC"
    names = {f.party_name for f in sample_review.findings}
    assert names <= {"Acme Widgets Corp.", "Beta Logistics LLC", "no one",
                     "both (Acme Widgets Corp. and Beta Logistics LLC)"}


def test_summary_lists_usual_clauses_that_are_missing(sample_review):
    missing = {m["clause"] for m in sample_review.summary["missing"]}
    assert "Limitation of liability" in missing  # the sample has no cap on liability
    assert "Governing law" not in missing  # clause 5 is one
    noncompete = [f for f in sample_review.findings if "non_compete" in f.clause_types]
    assert noncompete and noncompete[0].risk == "high"
    assert sample_review.summary["top_risks"][0]["risk"] == "high"
    assert sample_review.summary["top_risks"][0]["ref"] in ("3 Termination for Convenience", "4 Non-Compete")


def test_correction_changes_labels_keeps_the_original_and_refreshes_the_summary(sample_review):
    f = next(f for f in sample_review.findings if "non_compete" in f.clause_types)
    before = sample_review.summary["risk_counts"]["high"]
    apply_correction(sample_review, f.index, ["non_compete"], "second_party", "medium", "")
    assert f.corrected and f.original["risk"] == "high"
    assert f.party_name == "Beta Logistics LLC" and f.risk == "medium" and f.is_risk
    assert f.reason.startswith("Non-Compete:")
    assert sample_review.summary["risk_counts"]["high"] == before - 1
    with pytest.raises(ValueError, match="not in the taxonomy"):
        apply_correction(sample_review, f.index, ["non_compete"], "third_party", "medium")


def test_unavailable_model_fails_with_how_to_get_it(tmp_path):
    with pytest.raises(PredictorError, match="adapter folder does not exist"):
        parse_model("default", str(tmp_path / "nowhere"))
    (tmp_path / "adapter").mkdir()
    with pytest.raises(PredictorError, match="neither a reviewer adapter"):  # an empty folder: says what it lacks
        load_predictor(parse_model("default", str(tmp_path / "adapter")))
    import shutil

    from contract_review.reviewer.shipped import DEFAULT_ADAPTER_DIR

    shutil.copytree(DEFAULT_ADAPTER_DIR, tmp_path / "reviewer", ignore=shutil.ignore_patterns("*.png", "*.gz"))
    base = tmp_path / "base"
    base.mkdir()
    with pytest.raises(PredictorError, match="not a model folder"):  # a local base folder without a model in it
        load_predictor(parse_model(str(base), str(tmp_path / "reviewer")))


def test_the_command_refuses_an_unknown_model_naming_the_choices(tmp_path):
    (tmp_path / "msa.txt").write_text(SAMPLE, encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "contract_review.cli", "review", str(tmp_path / "msa.txt"), "--out",
                          str(tmp_path / "out"), "--model", "gpt-9"], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 2 and "unknown model 'gpt-9': choose default, " in run.stderr and "rules" in run.stderr
    assert not (tmp_path / "out").exists()


def test_review_command_writes_report_and_json_per_contract(tmp_path, cuad_test_contract):
    (tmp_path / "msa.txt").write_text(SAMPLE, encoding="utf-8")
    (tmp_path / "empty.txt").write_bytes(b"")
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "contract_review.cli", "review", str(cuad_test_contract),
                          str(tmp_path / "msa.txt"), str(tmp_path / "empty.txt"), "--out", str(out),
                          "--model", "rules", "--formats", "docx,pdf,csv"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr  # one file could not be reviewed: said, and the others done
    assert "empty.txt is empty" in run.stderr
    for stem in (cuad_test_contract.stem, "msa"):
        for fmt in FORMATS:
            assert (out / f"{stem}.review.{fmt}").stat().st_size > 0
    data = json.loads((out / "msa.review.json").read_text(encoding="utf-8"))
    expected = review_contract(read_contract(tmp_path / "msa.txt"), load_predictor(parse_model("rules")),
                               model_choice=describe_model(parse_model("rules"))).to_dict()
    for volatile in ("created_at", "seconds"):
        data.pop(volatile), expected.pop(volatile)
    assert data == expected  # the command runs the app's review function
    assert SAMPLE.splitlines()[4] not in run.stdout + run.stderr  # no contract text in the output


def test_a_local_base_model_with_its_adapter_reviews_through_the_product_path(tmp_path, cuad_test_contract):
    """The model choice for a large base (Llama-2-13B + adapter on a GPU), here at tiny-llama size:
    the folders `bench/app/make_random_reviewer.py` writes load through the model registry like a real one."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_random_reviewer",
                                                  REPO_ROOT / "bench" / "app" / "make_random_reviewer.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    info = mod.build("tiny-llama", "default", tmp_path / "rev")
    choice = parse_model(info["base"], info["adapter"])
    predictor = load_predictor(choice)
    assert str(next(predictor.model.parameters()).device) == "cpu"  # no GPU here: the host, in float32
    review = review_contract(read_contract(cuad_test_contract), predictor, model_choice=describe_model(choice))
    assert review.findings and all(f.clause_types and f.risk and f.reason for f in review.findings)
    assert predictor.model_version == "random-tiny-llama-untrained"


class _Recording:
    """The real rules predictor, keeping what it was asked."""

    def __init__(self, inner):
        self.inner, self.inputs = inner, []
        self.name, self.model_version = inner.name, inner.model_version

    def predict(self, clauses, progress=False):
        self.inputs.extend(clauses)
        return self.inner.predict(clauses, progress)


def test_findings_cite_the_contracts_numbers_and_only_clauses_are_labelled(rules):
    from test_app_segments import _pdf_text

    predictor = _Recording(rules)
    review = review_contract(read_text(_pdf_text()[0], "supply.pdf"), predictor)
    b = next(f for f in review.findings if f.number == "6.02(b)")
    assert b.ref == "6.02(b) Termination" and b.context.endswith("This Agreement may be terminated only:")
    asked = next(c for c in predictor.inputs if "undergoes a change of control" in c.text)
    assert asked.text == b.context + "\n" + b.text  # the model reads the lead-in with the item
    assert next(f for f in review.findings if f.number == "Section 1.04").ref == "Section 1.04 PERFORMANCE"
    # the lead-in, the address, the bank details and the signature block are no findings
    not_clauses = ("6.02.", "Acme Widgets Corp. 123", "Bank:", "IN WITNESS")
    assert not [f for f in review.findings if f.text.startswith(not_clauses)]
    kinds = {s["kind"] for s in review.segments}
    assert {"heading", "address", "payment_details", "signature"} <= kinds
    assert review.warnings == [] and review.contract["language"]["language"] == "en"
    assert Review.from_dict(review.to_dict()).to_dict() == review.to_dict()


CHINESE = ("采购合同\n\n甲方（买方）：上海华信贸易有限公司\n乙方（卖方）：深圳明达电子科技有限公司\n\n"
           "第一条 乙方向甲方供应电子元器件，合同总金额为人民币伍拾万元整。\n\n"
           "第二条 乙方应于本合同签订之日起三十日内将全部货物交付至甲方指定地点。")


def test_a_chinese_contract_is_a_question_first_and_claims_nothing_it_could_not_check(rules):
    from contract_review.app.review import NeedsConfirmation

    with pytest.raises(NeedsConfirmation, match="This contract is in Chinese.*Review it anyway"):
        review_contract(read_text(CHINESE, "采购合同.txt"), rules)
    review = review_contract(read_text(CHINESE, "采购合同.txt"), rules, anyway=True)
    assert review.contract["language"]["language"] == "zh" and not review.contract["language"]["supported"]
    assert len(review.warnings) == 1 and "Chinese" in review.warnings[0]
    s = review.summary
    assert s["assessed"] is False and "Chinese" in s["not_assessed_why"]
    assert s["missing"] == [] and {u["status"] for u in s["usual"]} == {"not checked"}
    # the parties are the contract's own, not role words it never uses
    assert [p["name"] for p in s["parties"]] == ["上海华信贸易有限公司", "深圳明达电子科技有限公司"]


def test_text_that_is_not_a_contract_is_a_question_not_a_review(rules):
    from contract_review.app.review import NeedsConfirmation

    text = ("Preheat the oven to 180 degrees. Mix the flour, sugar and butter in a large bowl until the dough is "
            "smooth. Add two eggs and a pinch of salt, then bake for forty minutes until golden.")
    with pytest.raises(NeedsConfirmation, match="does not read like a contract.*Review it anyway") as err:
        review_contract(read_text(text, "recipe.txt"), rules)
    assert err.value.reasons
    review = review_contract(read_text(text, "recipe.txt"), rules, anyway=True)
    assert review.contract["shape"]["looks_like_contract"] is False and not review.assessed
    assert any(w.startswith("This text does not read like a contract") for w in review.warnings)


def test_findings_cite_the_contract_and_reasons_quote_its_terms(rules):
    from test_app_segments import _pdf_text

    review = review_contract(read_text(_pdf_text()[0], "supply.pdf"), rules)
    perf = next(f for f in review.findings if f.number == "Section 1.04")
    assert perf.ref == "Section 1.04 PERFORMANCE"
    # the clause's own figures, each with its span in the contract
    assert "$50,000 per year" in perf.reason and "for 10 years" in perf.reason
    amount = next(t for t in perf.key_terms if t["kind"] == "amount")
    assert review.text[amount["start"]:amount["end"]] == "$50,000 per year"
    c = next(f for f in review.findings if f.number == "6.02(c)")
    assert "ninety (90) days' prior written notice" in c.reason
    # reasons never speak of another clause type than the finding's
    tax = load_taxonomy()
    for f in review.findings:
        others = [ct.name for ct in tax.clause_types if ct.id not in f.clause_types]
        assert not any(f.reason.startswith(f"{name}:") for name in others), (f.ref, f.reason)


def test_a_reason_written_for_another_type_is_replaced_by_the_findings_own(rules):
    from contract_review.app.reasons import base_reason
    from contract_review.prompt import Answer

    tax = load_taxonomy()
    wrong = Answer(("other",), "none", "none", "none", tax.default_reason("liquidated_damages"))
    assert base_reason(wrong, tax) == tax.default_reason("other")
    right = Answer(("liquidated_damages",), "first_party", "high", "liability", tax.default_reason("liquidated_damages"),
                   risk_to="first_party")
    assert base_reason(right, tax) == tax.default_reason("liquidated_damages")


def test_parties_come_from_the_contracts_list_with_blanks_shown_as_blanks(rules):
    text = ('LICENCE AGREEMENT\n\nThis Licence Agreement is made between [•], a [•] company ("Licensor"), and '
            'PACIFICAP ENTERTAINMENT, a Nevada corporation ("Licensee").\n\n1. Fee. Licensee shall pay Licensor '
            '$50,000 a year for 10 years. Licensee may not assign this Agreement.\n\n2. Law. This Agreement is '
            'governed by the laws of Nevada.')
    review = review_contract(read_text(text, "licence.txt"), rules)
    assert review.parties["first_party"] == "the Licensor (name left blank: [•])"
    assert review.parties["second_party"] == "PACIFICAP ENTERTAINMENT"
    assert [p["blank"] for p in review.summary["parties"]] == [True, False]


def test_each_finding_names_who_bears_the_risk_and_the_summary_serves_the_represented_party(rules):
    review = review_contract(read_text(SAMPLE, "msa.txt"), rules, represent="Beta")
    nc = next(f for f in review.findings if "non_compete" in f.clause_types)
    assert (nc.risk_to, nc.risk_to_name, nc.severity) == ("second_party", "Beta Logistics LLC", "high")
    s = review.summary
    assert s["represent"] == {"role": "second_party", "name": "Beta Logistics LLC"}
    mine = s["for_represented"]["top_risks"]
    assert mine and all(t["risk_to"] in ("second_party", "both") for t in mine)
    assert nc.index in [t["index"] for t in mine]
    # Acme bears none of these: its list is empty, and saying so is not "no risk"
    other = review_contract(read_text(SAMPLE, "msa.txt"), rules, represent="first_party").summary
    assert other["for_represented"]["top_risks"] == [] and other["represent"]["name"] == "Acme Widgets Corp."
    with pytest.raises(ValueError, match="'Gamma' is not a party of this contract.*Acme Widgets Corp."):
        review_contract(read_text(SAMPLE, "msa.txt"), rules, represent="Gamma")


def test_a_finding_whose_bearer_the_model_did_not_give_says_not_assessed(rules):
    from contract_review.app.review import finding_from
    from contract_review.annotation.segment import segment as seg
    from contract_review.predictor import ClausePrediction
    from contract_review.prompt import Answer

    review = review_contract(read_text(SAMPLE, "msa.txt"), rules)
    s = next(s for s in seg(SAMPLE) if "Non-Compete" in s.text)
    # what the shipped model answers today: a risk level and no bearer
    pred = ClausePrediction(Answer(("non_compete",), "second_party", "high", "competition", "x"), 0.9)
    f = finding_from(1, s, pred, review.parties, load_taxonomy(), text=SAMPLE)
    assert (f.risk_to, f.risk_to_name, f.severity) == (None, "not assessed", None) and f.risk == "high"


def test_usual_clauses_are_found_mentioned_or_missing_never_guessed(rules):
    review = review_contract(read_text(SAMPLE, "msa.txt"), rules)
    usual = {u["clause"]: u for u in review.summary["usual"]}
    assert usual["Governing law"]["status"] == "found" and usual["Governing law"]["where"] == ["5 Governing Law"]
    assert usual["Limitation of liability"]["status"] == "not found"
    # the words are there though no clause was labelled as such: "mentioned", with where, not "missing"
    text = SAMPLE + "\n6. Miscellaneous. Neither party may assign this Agreement without consent.\n"
    usual = {u["clause"]: u for u in review_contract(read_text(text, "msa.txt"), rules).summary["usual"]}
    if usual["Assignment"]["status"] != "found":
        assert usual["Assignment"]["status"] == "mentioned" and usual["Assignment"]["where"] == ["6 Miscellaneous"]
    checked = {t["id"]: t for area in review.summary["checked"] for t in area["types"]}
    assert set(checked) == {c.id for c in load_taxonomy().clause_types} - {"other"}
    assert checked["non_compete"]["found"] == ["4 Non-Compete"] and checked["non_compete"]["risk"] == "high"
    assert checked["cap_on_liability"]["found"] == [] and checked["cap_on_liability"]["risk"] is None

