"""Reading an uploaded contract: PDF (text layer), DOCX or plain text, into one string.

    contract = read_contract(path)              # or read_bytes(data, "nda.pdf")
    contract.text                               # what the segmenter, the model and the reader see
    contract.page_of(offset)                    # a PDF's page number of a character

What a file *is* is decided by its first bytes, not only its name: a PDF renamed `.txt` is
still read as a PDF, and a PNG renamed `.pdf` is refused. Everything that cannot be
reviewed raises `IngestError` with a message written for the lawyer who uploaded it (what
is wrong, what to do): an empty or oversize file, a text longer than any contract, a scanned
PDF with no text layer, a password-protected or damaged PDF or DOCX, a DOCX whose parts
unpack to more than an ordinary document holds, an old `.doc`, any other format. Messages
never quote the file's content, nor a server path: they reach logs and screens.

Limits (each named in its message): the upload's size (`max_bytes`, 20 MB by default), the
text's length (`MAX_CHARS`: three times the longest CUAD contract), a DOCX's unpacked size
(`MAX_DOCX_XML_BYTES` per XML part, `MAX_DOCX_BYTES` in all; sizes are read from the zip's
directory before anything is unpacked, and Python's zip reader never returns more than a
part declares, so a zip bomb is refused without being inflated).

Plain text is read as UTF-8, UTF-16 or UTF-32 (with a byte-order mark or without one),
else as Windows-1252 (which includes Latin-1's letters); see `decode_text`. PDFs encrypted
with RC4 or AES and no password to open them are read (AES needs the `cryptography`
package, a dependency); a PDF that needs a password is refused with how to remove it.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import logging
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # 20 MB: a PDF with its exhibits; the longest CUAD contract is 0.3 MB of text
MAX_CHARS = 1_000_000  # characters of text: three times the longest CUAD contract (338,211), ~400 pages
MAX_DOCX_XML_BYTES = 40 * 1024 * 1024  # one unpacked XML part: a 1,000-page document.xml is ~20 MB
MAX_DOCX_BYTES = 200 * 1024 * 1024  # every part unpacked (pictures included)
MAX_DOCX_PARTS = 5000
TEXT_SUFFIXES = (".txt", ".text", ".md", "")
SUPPORTED = "a PDF with a text layer, a Word .docx file or plain text (.txt)"
# a text layer thinner than this (letters per page) is a scan with stray OCR-less marks
_MIN_LETTERS_PER_PAGE = 40
_TEXT_SCORE = 0.85  # share of a decoded text's characters that must be ordinary letters, digits, punctuation

log = logging.getLogger("contract_review.app")


class IngestError(ValueError):
    """A file that cannot be reviewed; the message says why and what to do."""


@dataclass(frozen=True)
class Contract:
    name: str  # the file name as uploaded ("pasted text" for pasted text)
    kind: str  # "pdf" | "docx" | "text"
    text: str
    pages: int | None = None  # PDF only
    page_starts: tuple[int, ...] = field(default=(), repr=False)  # PDF only: where each page's text starts
    encoding: str | None = None  # plain text only: how its bytes were read

    @property
    def sha1(self) -> str:
        return hashlib.sha1(self.text.encode("utf-8")).hexdigest()

    @property
    def doc_id(self) -> str:
        """A stable id for this contract: the file's stem and a hash of its text (two
        different contracts with one name never share an id)."""
        stem = re.sub(r"[^\w.-]+", "_", Path(self.name).stem).strip("_") or "contract"
        return f"{stem[:80]}-{self.sha1[:8]}"

    def page_of(self, offset: int) -> int | None:
        """The 1-based page of a PDF that holds character `offset`; None for other files."""
        if not self.page_starts:
            return None
        return bisect.bisect_right(self.page_starts, offset)


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def _too_big(name: str, size: int, max_bytes: int) -> IngestError:
    return IngestError(f"{name} is {_mb(size)}, over the {_mb(max_bytes)} limit for one contract; upload the "
                       "contract alone (without exhibits scanned in), or split it")


def read_contract(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES, name: str | None = None) -> Contract:
    """Read a file; `name` is how messages call it (the upload's name, never the server's path)."""
    path = Path(path)
    shown = name or path.name
    if not path.is_file():
        raise IngestError(f"{shown}: the file is gone (uploads are read once); upload it again")
    size = path.stat().st_size
    if size > max_bytes:  # checked before reading, so a huge upload is never loaded into memory
        raise _too_big(shown, size, max_bytes)
    return read_bytes(path.read_bytes(), shown, max_bytes)


def read_text(text: str, name: str = "pasted text") -> Contract:
    text = _clean_text(text)
    if not text.strip():
        raise IngestError("There is no text to review: paste a contract or upload a file")
    return _checked(Contract(name, "text", text))


def read_bytes(data: bytes, name: str, max_bytes: int = DEFAULT_MAX_BYTES) -> Contract:
    suffix = Path(name).suffix.lower()
    if not data or not data.strip():
        raise IngestError(f"{name} is empty: there is nothing to review")
    if len(data) > max_bytes:
        raise _too_big(name, len(data), max_bytes)
    head = data[:8]
    if head.startswith(b"%PDF-") or (suffix == ".pdf" and b"%PDF-" in data[:1024]):
        return _checked(_read_pdf(data, name))
    if suffix == ".pdf":
        raise IngestError(f"{name} is not a PDF file (it may be damaged, or another format renamed .pdf); "
                          f"upload {SUPPORTED}")
    if head.startswith(b"\xd0\xcf\x11\xe0"):  # OLE2: Word 97-2003, or a password-protected Office file
        raise IngestError(f"{name} is an old Word .doc file or a password-protected Office file; "
                          "remove the password or save it as .docx (Word: File > Save As) and upload that")
    if head.startswith(b"PK\x03\x04") or suffix == ".docx":
        return _checked(_read_docx(data, name))
    if suffix in TEXT_SUFFIXES:
        return _checked(_read_plain(data, name))
    raise IngestError(f"{name}: the format {suffix!r} cannot be reviewed; upload {SUPPORTED}")


def _checked(contract: Contract) -> Contract:
    if len(contract.text) > MAX_CHARS:
        raise IngestError(f"{contract.name} holds {len(contract.text):,} characters of text, over the "
                          f"{MAX_CHARS:,}-character limit (about 400 pages; the longest contract of the CUAD "
                          "corpus has 338,211): review the contract without its exhibits, or split it")
    return contract


# -- formats ----------------------------------------------------------------------------------------

def _clean_text(text: str) -> str:
    """One newline convention; no NULs or other control characters except tab and newline."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n\n")
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", text)


_BOMS = ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xef\xbb\xbf", "utf-8-sig"),
         (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def _text_score(text: str) -> float:
    """Share of characters that ordinary text is made of: printable ASCII and whitespace, Latin-1 letters,
    CJK ideographs, kana, Hangul, CJK and full-width punctuation, general punctuation."""
    if not text:
        return 0.0
    sample = text[:20000]
    good = 0
    for ch in sample:
        cp = ord(ch)
        if (0x20 <= cp < 0x7F or ch in "\n\r\t\f" or 0xA0 <= cp <= 0x17F or 0x2000 <= cp <= 0x206F
                or 0x3000 <= cp <= 0x30FF or 0x4E00 <= cp <= 0x9FFF or 0xAC00 <= cp <= 0xD7AF
                or 0xFF00 <= cp <= 0xFFEF or 0x0370 <= cp <= 0x052F):
            good += 1
    return good / len(sample)


def _utf16(data: bytes) -> tuple[str, str] | None:
    """The better of UTF-16 little- and big-endian, if either reads as text. Where NUL bytes are (the
    high byte of ASCII characters) decides the byte order: after the character in little-endian."""
    sample = data[:65536]
    odd = sample[1::2].count(0)
    even = sample[0::2].count(0)
    if odd + even:
        if max(odd, even) < 0.75 * (odd + even):
            return None  # NUL bytes on both sides: binary data, not text
        codecs = ("utf-16-le",) if odd > even else ("utf-16-be",)
    else:
        codecs = ("utf-16-le", "utf-16-be")
    best = None
    for codec in codecs:
        try:
            text = data[: len(data) // 2 * 2].decode(codec)
        except UnicodeDecodeError:
            continue
        score = _text_score(text)
        sample = text[:20000]
        spaces = sum(c.isspace() for c in sample) / max(1, len(sample))
        cjk = sum(0x3040 <= ord(c) <= 0x9FFF or 0xAC00 <= ord(c) <= 0xD7AF for c in sample) / max(1, len(sample))
        if (spaces >= 0.03 or cjk >= 0.5) and score >= _TEXT_SCORE and (best is None or score > best[0]):
            best = (score, text, codec)
    return (best[1], best[2]) if best else None


def decode_text(data: bytes) -> tuple[str, str] | None:
    """A text file's characters and the encoding they were read with, or None for binary data.

    A byte-order mark decides; without one, NUL bytes mean UTF-16 (a text file has none
    otherwise); then UTF-8, which almost never decodes by accident; then Windows-1252, unless
    it reads as letters without spaces while UTF-16 reads as text (Chinese in UTF-16 without a
    mark and without ASCII has no NUL bytes)."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec).lstrip("\ufeff"), codec.replace("-sig", "")
            except UnicodeDecodeError:
                break
    if b"\x00" in data[:65536]:
        return _utf16(data)
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        text, codec = data.decode("cp1252"), "windows-1252"
    except UnicodeDecodeError:  # the five bytes cp1252 leaves undefined: Latin-1 has them
        text, codec = data.decode("latin-1"), "latin-1"
    spaces = sum(c.isspace() for c in text[:20000]) / max(1, len(text[:20000]))
    if spaces < 0.05:
        wide = _utf16(data)
        if wide:
            return wide
    return text, codec


def _read_plain(data: bytes, name: str) -> Contract:
    decoded = decode_text(data)
    if decoded is None:
        raise IngestError(f"{name} is not a text file (it holds binary data); upload {SUPPORTED}")
    text, encoding = decoded
    text = _clean_text(text)
    if not text.strip():
        raise IngestError(f"{name} is empty: there is nothing to review")
    return Contract(name, "text", text, encoding=encoding)


def _read_pdf(data: bytes, name: str) -> Contract:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PyPdfError

    # pypdf logs every recoverable glitch of a damaged file; they are not the user's business
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    damaged = (f"{name} could not be read as a PDF (the file is damaged or incomplete); "
               "export it again from the original document, or upload the DOCX")
    locked = (f"{name} is password-protected; remove the password (open it and save an unprotected copy) "
              "and upload that")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            # many PDFs are "encrypted" with an empty password only to restrict printing or editing
            try:
                opened = reader.decrypt("")
            except DependencyError:  # AES without the cryptography package: an installation problem
                log.error("a PDF encrypted with AES could not be opened: the 'cryptography' package is not "
                          "installed (it is a dependency: reinstall with `make install`)")
                raise IngestError(f"{name} is encrypted (AES), and this server cannot open such PDFs; save an "
                                  "unprotected copy (print to PDF) and upload that") from None
            except NotImplementedError:
                opened = 0
            if not opened:
                raise IngestError(locked)
        pages = list(reader.pages)
        texts = [(page.extract_text() or "") for page in pages]
    except IngestError:
        raise
    except FileNotDecryptedError:
        raise IngestError(locked) from None
    # PyPdfError: every error pypdf raises of a file, LimitReachedError (a field longer than pypdf allows) too;
    # NotImplementedError: a stream filter pypdf does not know (a damaged name, or one no PDF standard has)
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError, RecursionError,
            NotImplementedError, AssertionError, ZeroDivisionError, OverflowError, UnicodeError, MemoryError,
            LookupError):
        raise IngestError(damaged) from None
    if not pages:
        raise IngestError(damaged)
    parts, starts, pos = [], [], 0
    for t in texts:
        t = _clean_text(t.strip("\n"))
        starts.append(pos)
        parts.append(t)
        pos += len(t) + 2
    text = "\n\n".join(parts)
    letters = sum(c.isalpha() for c in text)
    if letters < _MIN_LETTERS_PER_PAGE * len(pages) and letters < 2000:
        raise IngestError(f"{name} has no text layer (it looks like a scan): run OCR on it first "
                          "(e.g. Acrobat's 'Recognize Text'), or upload the DOCX or a text version")
    return Contract(name, "pdf", text, pages=len(pages), page_starts=tuple(starts))


def _check_docx_sizes(data: bytes, name: str, damaged: str) -> None:
    """Refuse a DOCX whose parts unpack to more than a document holds, from the zip's directory alone."""
    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise IngestError(damaged) from None
    if len(infos) > MAX_DOCX_PARTS:
        raise IngestError(f"{name} holds {len(infos):,} parts, over the {MAX_DOCX_PARTS:,} a Word document has; "
                          "open it in Word and save it again, or upload a PDF")
    total = sum(i.file_size for i in infos)
    biggest = max((i for i in infos if i.filename.endswith((".xml", ".rels"))), key=lambda i: i.file_size,
                  default=None)
    if biggest is not None and biggest.file_size > MAX_DOCX_XML_BYTES:
        raise IngestError(f"{name} unpacks to {_mb(biggest.file_size)} of text markup in one part, over the "
                          f"{_mb(MAX_DOCX_XML_BYTES)} limit (a 1,000-page document has about 20 MB): it is no "
                          "ordinary Word document; save it again from Word, or upload a PDF")
    if total > MAX_DOCX_BYTES:
        raise IngestError(f"{name} unpacks to {_mb(total)}, over the {_mb(MAX_DOCX_BYTES)} limit; remove large "
                          "pictures or embedded files, or upload a PDF")


def _read_docx(data: bytes, name: str) -> Contract:
    from docx import Document
    from docx.opc.exceptions import PackageNotFoundError

    damaged = (f"{name} could not be read as a Word .docx file (it is damaged, or another format renamed "
               ".docx); open it in Word and save it again, or upload a PDF")
    _check_docx_sizes(data, name, damaged)
    try:
        doc = Document(io.BytesIO(data))
        blocks = _docx_blocks(doc)
    except (zipfile.BadZipFile, PackageNotFoundError, KeyError, ValueError, OSError, AttributeError, EOFError,
            TypeError, IndexError, RecursionError, NotImplementedError, UnicodeError):
        raise IngestError(damaged) from None
    except Exception as exc:  # lxml's XMLSyntaxError and friends: a broken part inside the zip
        if type(exc).__module__.startswith(("lxml", "docx", "zlib")) or type(exc).__name__ == "error":
            raise IngestError(damaged) from None
        raise
    text = _clean_text("\n\n".join(blocks))
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
