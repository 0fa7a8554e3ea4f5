"""Reading uploads: PDF text layers, DOCX, text; every unreadable file gets a clear message."""

from __future__ import annotations

import pytest
from app_files import SAMPLE, make_docx, make_pdf

from contract_review.app.ingest import IngestError, read_bytes, read_contract, read_text

# what each refused file must say (lower-cased substrings), so a lawyer knows what to do
EXPECTED = {
    "truncated.pdf": "could not be read as a pdf",
    "garbage.pdf": "could not be read as a pdf",
    "not-a-pdf.pdf": "is not a pdf file",
    "scanned.pdf": "no text layer",
    "locked.pdf": "password-protected",
    "truncated.docx": "could not be read as a word .docx",
    "broken-xml.docx": "could not be read as a word .docx",
    "old-word.doc": "old word .doc",
    "empty.txt": "is empty",
    "blank.pdf": "is empty",
    "image.png": "cannot be reviewed",
    "binary.txt": "not a text file",
}


def test_pdf_text_layer_is_read_in_order(tmp_path):
    (tmp_path / "msa.pdf").write_bytes(make_pdf(SAMPLE))
    c = read_contract(tmp_path / "msa.pdf")
    assert c.kind == "pdf" and c.pages == 1
    flat = " ".join(c.text.split())
    assert "Acme shall pay Beta the fees set out in Exhibit B" in flat
    assert flat.index("1. Services") < flat.index("5. Governing Law")


def test_docx_paragraphs_and_tables_are_read(tmp_path):
    (tmp_path / "msa.docx").write_bytes(make_docx(SAMPLE))
    c = read_contract(tmp_path / "msa.docx")
    assert c.kind == "docx"
    assert "Beta shall not provide logistics services to any competitor" in c.text
    assert "Signed for Beta Logistics LLC" in c.text  # the signature table


def test_text_in_legacy_encoding_and_windows_newlines():
    data = "Fees: 100 \u20ac; the Supplier\u2019s duty.\r\nSecond line.".encode("cp1252")
    c = read_bytes(data, "contract.txt")
    assert c.text == "Fees: 100 \u20ac; the Supplier\u2019s duty.\nSecond line."


def test_kind_comes_from_content_not_name(tmp_path):
    c = read_bytes(make_pdf(SAMPLE), "renamed.txt")
    assert c.kind == "pdf"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_unreadable_files_get_clear_messages(bad_files, name):
    with pytest.raises(IngestError) as err:
        read_contract(bad_files[name])
    message = str(err.value)
    assert EXPECTED[name] in message.lower(), message
    assert name in message  # names the file the user uploaded
    assert "Traceback" not in message


def test_oversize_file_is_refused_before_reading(tmp_path):
    big = tmp_path / "huge.txt"
    with open(big, "wb") as fh:
        fh.truncate(3 * 1024 * 1024)  # sparse: the check must not need to read it
    with pytest.raises(IngestError, match=r"3\.0 MB, over the 1\.0 MB limit"):
        read_contract(big, max_bytes=1024 * 1024)


def test_pasted_text_must_not_be_blank():
    with pytest.raises(IngestError, match="no text to review"):
        read_text("  \n\t ")
    assert read_text("Acme shall pay.").name == "pasted text"


def test_doc_id_is_stable_and_differs_by_content():
    a, b = read_text("Acme shall pay.", "x.txt"), read_text("Beta shall pay.", "x.txt")
    assert a.doc_id == read_text("Acme shall pay.", "x.txt").doc_id
    assert a.doc_id != b.doc_id and a.doc_id.startswith("x-")
