"""Reading uploads: PDF text layers, DOCX, text; every unreadable file gets a clear message."""

from __future__ import annotations

import io

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


ENGLISH = "The Supplier shall deliver the goods within thirty (30) days; fees are 100 \u20ac per unit.\nSecond line."
CHINESE = "采购合同\n\n甲方：上海华信贸易有限公司\n乙方：深圳明达电子科技有限公司\n\n第一条 乙方向甲方供应电子元器件。"


@pytest.mark.parametrize("text", [ENGLISH, CHINESE])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_text_in_utf_encodings_with_or_without_a_byte_order_mark(text, encoding):
    # "utf-16" and "utf-32" write a byte-order mark; "-le" / "-be" write none
    c = read_bytes(text.encode(encoding), "contract.txt")
    assert c.text == text, (encoding, c.encoding)


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
def test_text_in_eight_bit_encodings(encoding):
    text = "Le Fournisseur livrera les marchandises \u00e0 l'Acheteur; r\u00e9siliation apr\u00e8s pr\u00e9avis."
    c = read_bytes(text.encode(encoding), "contrat.txt")
    assert c.text == text and c.encoding in ("windows-1252", "latin-1")


def test_aes_encrypted_pdfs_open_like_rc4_ones(tmp_path):
    from fpdf.enums import EncryptionMethod

    for method in (EncryptionMethod.RC4, EncryptionMethod.AES_128, EncryptionMethod.AES_256):
        # only an owner password (restricts printing): opens without asking anyone
        c = read_bytes(make_pdf(SAMPLE, encryption=method), "msa.pdf")
        assert "Beta shall provide the logistics services" in " ".join(c.text.split()), method
        with pytest.raises(IngestError, match="msa.pdf is password-protected; remove the password"):
            read_bytes(make_pdf(SAMPLE, encrypt_password="user-secret", encryption=method), "msa.pdf")


def test_a_docx_that_unpacks_to_more_than_a_document_is_refused_unread():
    import io
    import zipfile

    good = make_docx(SAMPLE)
    src = zipfile.ZipFile(io.BytesIO(good))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "word/document.xml":  # 41 MB of padding inside the body: a 40 KB upload
                data = data.replace(b"<w:body>", b"<w:body>" + b" " * (41 * 1024 * 1024))
            out.writestr(info.filename, data)
    bomb = buf.getvalue()
    assert len(bomb) < 200_000
    with pytest.raises(IngestError, match=r"bomb.docx unpacks to 41\.0 MB of text markup in one part, over the "
                                          r"40\.0 MB limit"):
        read_bytes(bomb, "bomb.docx")


def test_a_text_longer_than_any_contract_is_refused_with_the_limit_named():
    from contract_review.app.ingest import MAX_CHARS

    with pytest.raises(IngestError, match=r"long.txt holds 1,040,000 characters of text, over the 1,000,000"):
        read_bytes(b"Supplier shall pay. " * 52_000, "long.txt")
    assert MAX_CHARS == 1_000_000


def test_a_pdf_knows_the_page_of_every_character():
    from contract_review.app.ingest import read_bytes as rb

    from test_app_segments import HEADER

    contract = rb(_pdf_bytes(), "supply.pdf")
    assert contract.page_of(0) == 1 and contract.page_of(len(contract.text) - 1) == contract.pages >= 4
    # every page starts with its running header: the n-th header is on page n
    headers = [i for i in range(len(contract.text)) if contract.text.startswith(HEADER, i)]
    assert [contract.page_of(i) for i in headers] == list(range(1, contract.pages + 1))
    assert read_text("Acme shall pay.").page_of(3) is None


def _pdf_bytes() -> bytes:
    import warnings

    from app_files import make_paged_pdf
    from test_app_segments import CONTRACT, COVENANTS, HEADER

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make_paged_pdf(CONTRACT.format(covenants=COVENANTS), HEADER, "Initialed ______")


def test_a_pdf_over_a_limit_of_the_pdf_reader_is_refused_as_damaged():
    """A ToUnicode map with an 84-byte character code: pypdf raises its LimitReachedError (no PdfReadError)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(SAMPLE))))
    for font in writer.pages[0]["/Resources"]["/Font"].values():
        cmap = font.get_object()["/ToUnicode"].get_object()
        cmap.set_data(cmap.get_data().replace(b"beginbfchar\n<", b"beginbfchar\n<" + b"00" * 40, 1))
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(IngestError, match=r"^cmap\.pdf could not be read as a PDF \(the file is damaged"):
        read_bytes(buf.getvalue(), "cmap.pdf")


def test_a_pdf_with_an_unknown_stream_filter_is_refused_as_damaged():
    data = make_pdf(SAMPLE).replace(b"/FlateDecode", b"/FlateDecodX")  # same length: the offsets still hold
    with pytest.raises(IngestError, match=r"^filter\.pdf could not be read as a PDF \(the file is damaged"):
        read_bytes(data, "filter.pdf")
