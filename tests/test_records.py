"""The record format: bad files and bad records fail with the file, the line and the fix."""

import json
import subprocess
import sys

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


def test_a_line_that_is_not_utf8_is_named_by_file_line_and_column(good, tmp_path):
    path = tmp_path / "d.jsonl"
    line = json.dumps(good, ensure_ascii=False).encode()
    at = line.index(b'"text"') + 10
    path.write_bytes(line + b"\n" + line[:at] + b"\xff" + line[at:] + b"\n")
    with pytest.raises(RecordError) as exc:
        read_records(path)
    column = len(line[:at].decode()) + 1
    assert str(exc.value).startswith(f"{path}:2:{column}: not UTF-8 text (byte 0xff)")
    assert "iconv" in str(exc.value)


def test_a_gzip_file_with_a_bad_byte_and_a_damaged_stream(good, tmp_path):
    import gzip

    line = json.dumps(good).encode() + b"\n"
    bad = tmp_path / "d.jsonl.gz"
    bad.write_bytes(gzip.compress(line * 3 + b'{"id": "\xe9"}\n'))
    with pytest.raises(RecordError, match=r"d.jsonl.gz:4:9: not UTF-8 text \(byte 0xe9\)"):
        read_records(bad)
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(line * 200)[:-40])
    with pytest.raises(RecordError, match=r"cut.jsonl.gz: the gzip stream is damaged after line \d+"):
        read_records(cut)


def test_an_oversized_line_is_refused_with_the_limit_without_reading_it_whole(good, tmp_path):
    from contract_review.records import MAX_RECORD_BYTES

    huge = dict(good, text="x" * (3 * MAX_RECORD_BYTES))
    path = _write(tmp_path / "d.jsonl", [good, huge, good])
    size = len(json.dumps(huge).encode())
    with pytest.raises(RecordError) as exc:
        read_records(path)
    assert f"d.jsonl:2: the line is {size:,} bytes, over the limit of {MAX_RECORD_BYTES:,}" in str(exc.value)
    # a line of exactly the limit is a record like any other (here: refused for its content, not its size)
    exact = tmp_path / "exact.jsonl"
    exact.write_bytes(b'{"pad": "' + b"y" * (MAX_RECORD_BYTES - 11) + b'"}\n')
    with pytest.raises(RecordError, match=r"exact.jsonl:1: id: Field required"):
        read_records(exact)


def test_data_check_lists_every_bad_line_in_one_run(good, tmp_path):
    from contract_review.records import MAX_RECORD_BYTES

    path = tmp_path / "d.jsonl"
    ok = json.dumps(good).encode()
    path.write_bytes(b"\n".join([ok, b'{"id": "\xff"}', b"x" * (MAX_RECORD_BYTES + 5), b"{broken", ok]) + b"\n")
    out = subprocess.run([sys.executable, "-m", "contract_review.cli", "data", "check", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert f"{path}:2:9: not UTF-8 text" in out.stderr
    assert f"{path}:3: the line is {MAX_RECORD_BYTES + 5:,} bytes" in out.stderr
    assert f"{path}:4: not valid JSON" in out.stderr
    assert "3 invalid records, 2 valid" in out.stderr
