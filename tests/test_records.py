"""The record format: bad files and bad records fail with the file, the line and the fix."""

import json

import pytest

from contract_review.cli import main
from contract_review.prompt import AnswerError, parse_answer
from contract_review.records import RecordError, read_records, write_records


@pytest.fixture
def good(dataset):
    return dataset["test"][0].model_dump(exclude_none=True)


def _write(path, objs):
    path.write_text("".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs))
    return path


def test_round_trip(dataset, tmp_path):
    path = tmp_path / "r.jsonl"
    write_records(path, dataset["test"][:20])
    assert read_records(path) == dataset["test"][:20]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r.update(party="buyer"), "2: party: party 'buyer' is not in the taxonomy; use one of"),
        (lambda r: r.update(clause_types=["warranty"]), "2: clause_types: clause_type 'warranty' is not in the"),
        (lambda r: r.pop("output"), "2: output: Field required"),
        (lambda r: r.update(output=r["output"].replace('"risk": "', '"risk": "x')), "output does not match"),
        (lambda r: r.update(verified=True, labeller=None), "must name its labeller"),
        (lambda r: r.update(colour="red"), "2: colour: Extra inputs are not permitted"),
    ],
)
def test_a_bad_record_names_file_line_and_field(good, tmp_path, edit, message):
    bad = dict(good)
    edit(bad)
    path = _write(tmp_path / "d.jsonl", [good, bad])
    with pytest.raises(RecordError) as exc:
        read_records(path)
    assert str(exc.value).startswith(f"{path}:")
    assert message in str(exc.value)


def test_broken_json_line_and_empty_file(good, tmp_path):
    path = _write(tmp_path / "d.jsonl", [good, '{"id": "x", '])
    with pytest.raises(RecordError, match=r"d.jsonl:2: not valid JSON"):
        read_records(path)
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    with pytest.raises(RecordError, match="no records in file"):
        read_records(empty)
    with pytest.raises(RecordError, match="file not found"):
        read_records(tmp_path / "missing.jsonl")


def test_data_check_command(good, tmp_path, capsys):
    path = _write(tmp_path / "d.jsonl", [good])
    assert main(["data", "check", str(path)]) == 0
    assert "1 valid records" in capsys.readouterr().out
    _write(path, [good, "[1, 2]"])
    assert main(["data", "check", str(path)]) == 2
    assert "d.jsonl:2: expected a JSON object" in capsys.readouterr().err


def test_parse_answer_reports_invalid_output_instead_of_guessing(good):
    ok = parse_answer("Sure! " + good["output"] + " hope this helps")
    assert ok.party == good["party"]
    for raw, kind in [
        ("no json here", "invalid_json"),
        ('{"clause_types": ["other"], "party": "none"', "invalid_json"),
        ('{"clause_types": ["other"]}', "missing_key"),
        ('{"clause_types": ["bogus"], "party": "none", "risk": "none", "risk_category": "none", "reason": ""}',
         "unknown_label"),
    ]:
        with pytest.raises(AnswerError) as exc:
            parse_answer(raw)
        assert exc.value.kind == kind
