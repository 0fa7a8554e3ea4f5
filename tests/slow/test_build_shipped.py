"""`contract-review data build`: reproducible, and clear about bad input."""

import filecmp


from contract_review.cli import main
from contract_review.paths import DATASET_DIR


def test_build_from_the_shipped_corpora_reproduces_the_shipped_dataset_byte_for_byte(tmp_path):
    out = tmp_path / "ds"
    assert main(["data", "build", "--gzip", "--quiet", "--out", str(out)]) == 0
    for name in ("train.jsonl.gz", "validation.jsonl.gz", "test.jsonl.gz", "build_report.jsonl"):
        assert filecmp.cmp(out / name, DATASET_DIR / name, shallow=False), f"{name} differs from the shipped file"
