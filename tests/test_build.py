"""`contract-review data build`: reproducible, and clear about bad input."""

import csv
import filecmp
import shutil
import sys


from contract_review.annotation.cuad import CorpusError
from contract_review.cli import main


def _small_corpus(cuad_dir, claudette_dir, tmp_path, n=12):
    """A copy of a few contracts and companies in the published layouts."""
    cuad = tmp_path / "cuad"
    (cuad / "full_contract_txt").mkdir(parents=True)
    csv.field_size_limit(sys.maxsize)
    with open(cuad_dir / "master_clauses.csv", newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    with open(cuad / "master_clauses.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows[: n + 1])
    for row in rows[1 : n + 1]:
        stem = row[0].rsplit(".", 1)[0]
        shutil.copy(cuad_dir / "full_contract_txt" / f"{stem}.txt", cuad / "full_contract_txt")
    tos = tmp_path / "tos"
    for sub in [p for p in claudette_dir.iterdir() if p.is_dir()]:
        (tos / sub.name).mkdir(parents=True)
        for company in ("Airbnb", "Tinder", "Zynga"):
            for f in sub.glob(f"{company}.*"):
                shutil.copy(f, tos / sub.name)
    return cuad, tos


def test_build_from_folders_given_as_arguments_twice_gives_identical_files(cuad_dir, claudette_dir, tmp_path):
    cuad, tos = _small_corpus(cuad_dir, claudette_dir, tmp_path)
    for run in ("a", "b"):
        assert main(["data", "build", "--quiet", "--cuad", str(cuad), "--claudette", str(tos),
                     "--out", str(tmp_path / run), "--verified", "none"]) == 0
    for name in ("train.jsonl", "validation.jsonl", "test.jsonl"):
        assert filecmp.cmp(tmp_path / "a" / name, tmp_path / "b" / name, shallow=False)
    # either corpus may be left out
    assert main(["data", "build", "--quiet", "--claudette", str(tos), "--out", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / "train.jsonl").read_text().count('"source": "cuad"') == 0


def test_malformed_corpus_names_the_file_and_line_and_writes_nothing(cuad_dir, claudette_dir, tmp_path, capsys):
    cuad, tos = _small_corpus(cuad_dir, claudette_dir, tmp_path, n=3)
    csv_path = cuad / "master_clauses.csv"
    lines = csv_path.read_text().splitlines(keepends=True)
    csv_path.write_text(lines[0] + lines[1] + '"only","three","fields"\n')
    out = tmp_path / "out"
    assert main(["data", "build", "--quiet", "--cuad", str(cuad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{csv_path}:3: 3 fields, expected" in err
    assert not out.exists()

    (tos / "Labels_A" / "Airbnb.txt").write_text("1\n-1\nmaybe\n")
    assert main(["data", "build", "--quiet", "--claudette", str(tos), "--out", str(out)]) == 2
    assert "Airbnb.txt: 3 labels for" in capsys.readouterr().err
    assert not out.exists()


def test_missing_corpus_folder_and_empty_contract_are_reported(cuad_dir, claudette_dir, tmp_path, capsys):
    assert main(["data", "build", "--quiet", "--cuad", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "no master_clauses.csv; --cuad must name a CUAD v1 folder" in capsys.readouterr().err
    cuad, _ = _small_corpus(cuad_dir, claudette_dir, tmp_path, n=3)
    empty = sorted((cuad / "full_contract_txt").glob("*.txt"))[0]
    empty.write_text("   \n")
    assert main(["data", "build", "--quiet", "--cuad", str(cuad), "--out", str(tmp_path / "o")]) == 0
    assert f"{empty}: contract has no text; skipped" in capsys.readouterr().err


def test_corpus_error_is_a_value_error_the_cli_reports():
    assert issubclass(CorpusError, ValueError)


def test_records_are_clauses_without_page_furniture_and_fragments_carry_their_lead_in(cuad_dir, claudette_dir,
                                                                                      tmp_path):
    from contract_review.annotation.build import build_records

    cuad, _ = _small_corpus(cuad_dir, claudette_dir, tmp_path, n=12)
    records, report = build_records(cuad, None, progress=False)
    agape = [r for r in records if r.doc_id.startswith("AgapeAtpCorp")]
    assert agape and report.cuad_spans_located > 0
    assert not [r.id for r in records if "Source:" in r.text or "ODM Supply Agreement 7" in r.text]
    assert not [r.id for r in agape if r.text.startswith("IN WITNESS") or "By: /s/" in r.text]
    b = next(r for r in agape if r.text.startswith("(b) On the commencement of the winding up"))
    context, clause = b.input.split("\nClause: ", 1)[1].split("\n", 1)
    assert context.endswith("each party shall have the right to summarily terminate this Agreement:")
    assert clause == b.text and b.input.endswith(b.text)
    # a numbered clause that reads alone is given as written
    arbitration = next(r for r in agape if r.text.startswith("8.1 Any and all disputes"))
    assert arbitration.input.endswith("\nClause: " + arbitration.text)
    law = next(r for r in agape if r.text.startswith("10. GOVERNING LAW"))
    assert law.clause_types == ["governing_law"]  # the lawyers' span lands on its clause


def test_verified_labels_follow_the_contract_party_list_through_the_checker_names(tmp_path):
    import hashlib
    import json

    from contract_review.annotation.build import BuildReport, apply_verified

    text = "Supplier shall keep accurate records."
    names = {"first_party": "Bank of America, N.A.", "second_party": "Cardlytics, Inc."}
    rec = {"id": "cuad/doc/0-37", "text": text, "party": "none", "party_names": names,
           "party_aliases": {"first_party": ["Bank of America"], "second_party": ["Supplier"]},
           "output": json.dumps({"party": "none"}), "party_labeller": "rules", "verified": False}
    sha = hashlib.sha1(text.encode()).hexdigest()
    entries = [  # checked against the names in the other order, then against names that match no party
        {"id": "cuad/doc/0-37", "party": "first_party", "labeller": "ai-reviewer-3", "text_sha1": sha,
         "party_names": {"first_party": "Cardlytics, Inc.", "second_party": "Bank of America"}},
    ]
    path = tmp_path / "v.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    report = BuildReport()
    apply_verified([rec], path, report)
    assert (rec["party"], rec["verified"], rec["party_labeller"]) == ("second_party", True, "ai-reviewer-3")
    assert report.verified_remapped == 1 and json.loads(rec["output"])["party"] == "second_party"

    rec2 = dict(rec, party="none", verified=False)
    entries[0]["party_names"] = {"first_party": "Somebody Else LLC", "second_party": "Company"}
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    report = BuildReport()
    apply_verified([rec2], path, report)
    assert rec2["party"] == "none" and not rec2["verified"] and report.verified_unmatched == ["cuad/doc/0-37"]
