"""Records refuse labels that contradict each other, and `data check` lists each with its file and line."""

import json

import pytest

from contract_review.cli import main
from contract_review.prompt import INSTRUCTION, SYSTEM, Answer, AnswerError, build_input, parse_answer
from contract_review.records import RecordError, read_records

NAMES = {"first_party": "Acme Corp.", "second_party": "Beta LLC"}


def _record(**over) -> dict:
    labels = {"clause_types": ["termination_for_convenience"], "party": "none", "risk_to": "second_party",
              "severity": "high", "risk": "high", "risk_category": "termination", "reason": "Acme may end it at will."}
    labels.update({k: v for k, v in over.items() if k in labels})
    names = over.get("party_names", NAMES)
    text = "Acme may terminate this Agreement at any time."
    answer = Answer(tuple(labels["clause_types"]), labels["party"], labels["risk"], labels["risk_category"],
                    labels["reason"], risk_to=labels["risk_to"], severity=labels["risk"])
    rec = {"id": "cuad/doc/0-46", "system": SYSTEM, "instruction": INSTRUCTION, "input": build_input(text, names),
           "output": answer.to_json(), "source": "cuad", "doc_id": "doc", "split": "train", "start": 0, "end": 46,
           "text": text, "party_names": names, "type_labeller": "cuad", "party_labeller": "rules",
           "risk_labeller": "rules", **labels}
    rec.update({k: v for k, v in over.items() if k not in labels and k != "party_names"})
    return rec


def _write(path, objs):
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path


def test_a_consistent_record_reads_back_with_its_bearer_and_severity(tmp_path):
    [rec] = read_records(_write(tmp_path / "d.jsonl", [_record()]))
    assert (rec.risk_to, rec.severity, rec.risk, rec.is_risk) == ("second_party", "high", "high", True)
    assert json.loads(rec.output)["risk_to"] == "second_party"


def _bad(output_severity=None, **over):
    rec = _record()
    rec.update(over)
    if output_severity is not None or "risk_to" in over:
        ans = json.loads(rec["output"])
        ans.update({k: v for k, v in over.items() if k in ans})
        rec["output"] = json.dumps(ans)
    return rec


@pytest.mark.parametrize("bad, message", [
    (_bad(severity="severe", risk="severe"), "severity: severity 'severe' is not in the taxonomy"),
    (_bad(risk_to="none"), "severity 'high' has no bearer (risk_to none)"),
    (_bad(severity="none", risk="none"), "risk_to 'second_party' names a bearer but severity is none"),
    (_bad(risk="medium"), "risk 'medium' must equal severity 'high'"),
    (_bad(party_names={"first_party": "Acme Corp."}), "risk_to 'second_party', but the record's party list names no "
                                                      "second_party"),
    (_bad(party="both", party_names={"first_party": "Acme Corp.", "second_party": ""}), "party 'both', but the "
                                                                                       "record's party list names no"),
    (_bad(risk_graded=True), "needs risk labels from two different annotators"),
])
def test_contradictory_labels_are_refused_with_file_line_and_field(tmp_path, bad, message, capsys):
    path = _write(tmp_path / "d.jsonl", [_record(), bad, _record()])
    with pytest.raises(RecordError) as exc:
        read_records(path)
    assert str(exc.value).startswith(f"{path}:2: ") and message in str(exc.value)
    assert main(["data", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2: " in err and message in err and "1 invalid records, 2 valid" in err


def test_a_graded_record_keeps_both_annotators_and_who_settled_it(tmp_path):
    anns = [{"annotator": "ai-annotator-1", "risk_to": "second_party", "severity": "high", "reason": "no notice"},
            {"annotator": "ai-annotator-2", "risk_to": "second_party", "severity": "medium", "reason": "paid"}]
    ok = _record(risk_graded=True, risk_annotations=anns, risk_adjudicator="lead", risk_labeller="graded")
    [rec] = read_records(_write(tmp_path / "g.jsonl", [ok]))
    assert [a.severity for a in rec.risk_annotations] == ["high", "medium"] and rec.risk_adjudicator == "lead"
    agreed_wrongly = _record(risk_graded=True, risk_annotations=anns, risk_adjudicator="agreement")
    with pytest.raises(RecordError, match="annotators' labels differ"):
        read_records(_write(tmp_path / "h.jsonl", [agreed_wrongly]))
    bad_ann = _record(risk_graded=True, risk_adjudicator="lead",
                      risk_annotations=[anns[0], {**anns[1], "risk_to": "none"}])
    with pytest.raises(RecordError, match="annotation by ai-annotator-2: severity 'medium' has no bearer"):
        read_records(_write(tmp_path / "i.jsonl", [bad_ann]))


def test_answers_carry_bearer_and_severity_and_contradictions_are_reported():
    ans = parse_answer('{"clause_types": ["cap_on_liability"], "party": "none", "risk_to": "first_party", '
                       '"severity": "medium", "risk": "medium", "risk_category": "liability", "reason": "r"}')
    assert (ans.risk_to, ans.severity, ans.risk) == ("first_party", "medium", "medium")
    old = parse_answer('{"clause_types": ["other"], "party": "none", "risk": "low", "risk_category": "none", '
                       '"reason": "r"}')  # an answer from before bearers: severity is risk, the bearer unknown
    assert (old.risk_to, old.severity) == (None, "low")
    for raw in ('{"clause_types": ["other"], "party": "none", "risk_to": "none", "severity": "high", "risk": "high", '
                '"risk_category": "none", "reason": "r"}',
                '{"clause_types": ["other"], "party": "none", "risk_to": "both", "severity": "low", "risk": "high", '
                '"risk_category": "none", "reason": "r"}'):
        with pytest.raises(AnswerError) as exc:
            parse_answer(raw)
        assert exc.value.kind == "inconsistent"
    assert Answer(("other",), "none", "none", "none", "r").risk_to == "none"  # no risk, nobody bears it
