"""Fixtures of the app tests: real contracts from the dataset's test split, and files made
here (see app_files.py), good and broken, to feed the app."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from app_files import SAMPLE, cuad_test_doc_ids, docx_with_broken_xml, make_docx, make_pdf, make_scanned_pdf, truncated


@pytest.fixture(scope="session")
def cuad_test_contract(cuad_dir) -> Path:
    """A short real contract of the test split (the shortest over 9,000 characters: quick to review)."""
    folder = cuad_dir / "full_contract_txt"
    files = [folder / f"{d}.txt" for d in cuad_test_doc_ids() if (folder / f"{d}.txt").exists()]
    files = [f for f in files if f.stat().st_size > 9000]
    assert files, "no CUAD test-split contract found in the shipped corpus"
    return min(files, key=lambda f: f.stat().st_size)


@pytest.fixture
def sample_text() -> str:
    return SAMPLE


@pytest.fixture
def bad_files(tmp_path, sample_text) -> dict[str, Path]:
    """Files the app must refuse with a clear message; name -> path."""
    pdf, docx = make_pdf(sample_text), make_docx(sample_text)
    files = {
        "truncated.pdf": truncated(pdf),
        "garbage.pdf": b"%PDF-1.7\n" + os.urandom(2000),
        "not-a-pdf.pdf": b"\x89PNG\r\n\x1a\n" + os.urandom(500),
        "scanned.pdf": make_scanned_pdf(),
        "locked.pdf": make_pdf(sample_text, encrypt_password="user-secret"),
        "truncated.docx": truncated(docx),
        "broken-xml.docx": docx_with_broken_xml(docx),
        "old-word.doc": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + os.urandom(1000),
        "empty.txt": b"",
        "blank.pdf": b"  \n",
        "image.png": b"\x89PNG\r\n\x1a\n" + os.urandom(500),
        "binary.txt": b"abc\x00\x01\x02" * 50,
    }
    out = {}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        out[name] = tmp_path / name
    return out
