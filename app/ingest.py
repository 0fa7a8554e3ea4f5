"""Reading an uploaded contract: PDF (text layer), DOCX or plain text, into one string.

    contract = read_contract(path)              # or read_bytes(data, "nda.pdf")
    contract.text                               # what the segmenter, the model and the reader see

What a file *is* is decided by its first bytes, not only its name: a PDF renamed `.txt` is
still read as a PDF, and a PNG renamed `.pdf` is refused. Everything that cannot be
reviewed raises `IngestError` with a message written for the lawyer who uploaded it (what
is wrong, what to do): an empty or oversize file, a scanned PDF with no text layer, a
password-protected or damaged PDF or DOCX, an old `.doc`, any other format. Messages never
quote the file's content: they reach logs and screens.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # 20 MB: the longest CUAD contract is under 1 MB of text
TEXT_SUFFIXES = (".txt", ".text", ".md", "")
SUPPORTED = "a PDF with a text layer, a Word .docx file or plain text (.txt)"
# a text layer thinner than this (letters per page) is a scan with stray OCR-less marks
_MIN_LETTERS_PER_PAGE = 40


class IngestError(ValueError):
    """A file that cannot be reviewed; the message says why and what to do."""


@dataclass(frozen=True)
class Contract:
    name: str  # the file name as uploaded ("pasted text" for pasted text)
    kind: str  # "pdf" | "docx" | "text"
    text: str
    pages: int | None = None  # PDF only

    @property
    def sha1(self) -> str:
        return hashlib.sha1(self.text.encode("utf-8")).hexdigest()

    @property
    def doc_id(self) -> str:
        """A stable id for this contract: the file's stem and a hash of its text (two
        different contracts with one name never share an id)."""
        stem = re.sub(r"[^\w.-]+", "_", Path(self.name).stem).strip("_") or "contract"
        return f"{stem[:80]}-{self.sha1[:8]}"


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def read_contract(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES, name: str | None = None) -> Contract:
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path}: no such file")
    size = path.stat().st_size
    if size > max_bytes:  # checked before reading, so a huge upload is never loaded into memory
        raise IngestError(f"{name or path.name} is {_mb(size)}, over the {_mb(max_bytes)} limit; "
                          "upload the contract alone (without exhibits scanned in), or split it")
    return read_bytes(path.read_bytes(), name or path.name, max_bytes)


def read_text(text: str, name: str = "pasted text") -> Contract:
    text = _clean_text(text)
    if not text.strip():
        raise IngestError("There is no text to review: paste a contract or upload a file")
    return Contract(name, "text", text)


def read_bytes(data: bytes, name: str, max_bytes: int = DEFAULT_MAX_BYTES) -> Contract:
    suffix = Path(name).suffix.lower()
    if not data or not data.strip():
        raise IngestError(f"{name} is empty: there is nothing to review")
    if len(data) > max_bytes:
        raise IngestError(f"{name} is {_mb(len(data))}, over the {_mb(max_bytes)} limit; "
                          "upload the contract alone (without exhibits scanned in), or split it")
    head = data[:8]
    if head.startswith(b"%PDF-") or (suffix == ".pdf" and b"%PDF-" in data[:1024]):
        return _read_pdf(data, name)
    if suffix == ".pdf":
        raise IngestError(f"{name} is not a PDF file (it may be damaged, or another format renamed .pdf); "
                          f"upload {SUPPORTED}")
    if head.startswith(b"\xd0\xcf\x11\xe0"):  # OLE2: Word 97-2003, or a password-protected Office file
        raise IngestError(f"{name} is an old Word .doc file or a password-protected Office file; "
                          "remove the password or save it as .docx (Word: File > Save As) and upload that")
    if head.startswith(b"PK\x03\x04") or suffix == ".docx":
        return _read_docx(data, name)
    if suffix in TEXT_SUFFIXES:
        return _read_plain(data, name)
    raise IngestError(f"{name}: the format {suffix!r} cannot be reviewed; upload {SUPPORTED}")


# -- formats ----------------------------------------------------------------------------------------

def _clean_text(text: str) -> str:
    """One newline convention; no NULs or other control characters except tab and newline."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n\n")
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", text)


def _read_plain(data: bytes, name: str) -> Contract:
    if b"\x00" in data[:8192]:
        raise IngestError(f"{name} is not a text file (it holds binary data); upload {SUPPORTED}")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        text = data.decode("latin-1")
    text = _clean_text(text)
    if not text.strip():
        raise IngestError(f"{name} is empty: there is nothing to review")
    return Contract(name, "text", text)


def _read_pdf(data: bytes, name: str) -> Contract:
    import logging

    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    # pypdf logs every recoverable glitch of a damaged file; they are not the user's business
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    damaged = (f"{name} could not be read as a PDF (the file is damaged or incomplete); "
               "export it again from the original document, or upload the DOCX")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            # many PDFs are "encrypted" with an empty password only to restrict printing or editing
            try:
                opened = reader.decrypt("")
            except (DependencyError, NotImplementedError):
                opened = 0
            if not opened:
                raise IngestError(f"{name} is password-protected; remove the password (open it and save an "
                                  "unprotected copy) and upload that")
        pages = list(reader.pages)
        texts = [(page.extract_text() or "") for page in pages]
    except IngestError:
        raise
    except FileNotDecryptedError:
        raise IngestError(f"{name} is password-protected; remove the password and upload it again") from None
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError,
            RecursionError, AssertionError):
        raise IngestError(damaged) from None
    if not pages:
        raise IngestError(damaged)
    text = _clean_text("\n\n".join(t.strip("\n") for t in texts))
    letters = sum(c.isalpha() for c in text)
    if letters < _MIN_LETTERS_PER_PAGE * len(pages) and letters < 2000:
        raise IngestError(f"{name} has no text layer (it looks like a scan): run OCR on it first "
                          "(e.g. Acrobat's 'Recognize Text'), or upload the DOCX or a text version")
    return Contract(name, "pdf", text, pages=len(pages))


def _read_docx(data: bytes, name: str) -> Contract:
    from docx import Document
    from docx.opc.exceptions import PackageNotFoundError

    damaged = (f"{name} could not be read as a Word .docx file (it is damaged, or another format renamed "
               ".docx); open it in Word and save it again, or upload a PDF")
    try:
        doc = Document(io.BytesIO(data))
    except (zipfile.BadZipFile, PackageNotFoundError, KeyError, ValueError, OSError, AttributeError):
        raise IngestError(damaged) from None
    except Exception as exc:  # lxml's XMLSyntaxError and friends: a broken part inside the zip
        if type(exc).__module__.startswith(("lxml", "docx")):
            raise IngestError(damaged) from None
        raise
    text = _clean_text("\n\n".join(_docx_blocks(doc)))
    if not text.strip():
        raise IngestError(f"{name} holds no text (an empty document, or only images: run OCR first)")
    return Contract(name, "docx", text)


def _docx_blocks(doc) -> list[str]:
    """Paragraphs and tables in document order; a table row becomes one line, cells joined."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    out: list[str] = []
    for block in doc.iter_inner_content():
        if isinstance(block, Paragraph):
            if block.text.strip():
                out.append(block.text.strip())
        elif isinstance(block, Table):
            for row in block.rows:
                cells = list(dict.fromkeys(c.text.strip() for c in row.cells if c.text.strip()))
                if cells:
                    out.append("  ".join(cells))
    return out
