"""Files made for the app tests: PDFs (fpdf2) and DOCX (python-docx), good and broken, and
the CUAD contracts of the dataset's test split."""

from __future__ import annotations

import gzip
import io
import json
import socket
import zipfile

from contract_review.paths import DATASET_DIR

SAMPLE = """MASTER SERVICES AGREEMENT

This Master Services Agreement (the "Agreement") is made as of March 1, 2021 by and between Acme Widgets Corp., a Delaware corporation ("Acme"), and Beta Logistics LLC, a New York limited liability company ("Beta").

1. Services. Beta shall provide the logistics services described in Exhibit A to Acme in a professional manner.

2. Fees. Acme shall pay Beta the fees set out in Exhibit B within thirty (30) days of each invoice.

3. Termination for Convenience. Acme may terminate this Agreement at any time for any reason upon ten (10) days written notice to Beta.

4. Non-Compete. During the term and for two years after, Beta shall not provide logistics services to any competitor of Acme anywhere in North America.

5. Governing Law. This Agreement shall be governed by the laws of the State of New York.
"""


def cuad_test_doc_ids() -> list[str]:
    """CUAD doc ids of the test split, in file order."""
    seen: dict[str, None] = {}
    with gzip.open(DATASET_DIR / "test.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            if r["source"] == "cuad":
                seen.setdefault(r["doc_id"], None)
    return list(seen)


def make_pdf(text: str, encrypt_password: str | None = None, encryption=None) -> bytes:
    """A PDF of `text`; with `encryption` (fpdf's EncryptionMethod) or a password, encrypted: an owner
    password only restricts printing, a user password must be given to open it."""
    from fpdf import FPDF

    from contract_review.app.fonts import dejavu as _dejavu

    pdf = FPDF()
    fonts = _dejavu()
    pdf.add_font("DejaVu", "", str(fonts[0]))
    pdf.set_font("DejaVu", size=10)
    if encrypt_password or encryption is not None:
        kwargs = {"encryption_method": encryption} if encryption is not None else {}
        pdf.set_encryption(owner_password="owner-secret", user_password=encrypt_password or "", **kwargs)
    pdf.add_page()
    for para in text.split("\n\n"):
        pdf.multi_cell(0, 5, para.strip(), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
    return bytes(pdf.output())


def make_paged_pdf(text: str, header: str, footer: str) -> bytes:
    """A PDF whose every page carries a running header and a footer with "Page N of M", as
    word processors print them; small pages, so paragraphs break across pages."""
    from fpdf import FPDF

    from contract_review.app.fonts import dejavu as _dejavu

    class Paged(FPDF):
        def header(self):
            self.set_font("DejaVu", size=8)
            self.cell(0, 5, header, new_x="LMARGIN", new_y="NEXT")
            self.ln(2)

        def footer(self):
            self.set_y(-12)
            self.set_font("DejaVu", size=8)
            self.cell(0, 5, f"{footer}    Page {self.page_no()} of {{nb}}", align="C")

    pdf = Paged(format="A5")
    pdf.add_font("DejaVu", "", str(_dejavu()[0]))
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_page()
    for para in text.split("\n\n"):
        pdf.set_font("DejaVu", size=10)
        pdf.multi_cell(0, 5, para.strip(), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
    return bytes(pdf.output())


def make_scanned_pdf() -> bytes:
    """A page holding only a picture of text: what a scanner without OCR produces."""
    from fpdf import FPDF
    from PIL import Image, ImageDraw

    img = Image.new("L", (800, 300), 255)
    draw = ImageDraw.Draw(img)
    for i in range(8):
        draw.text((20, 20 + 30 * i), "The Supplier shall deliver the goods on time. " * 2, fill=0)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    pdf = FPDF()
    pdf.add_page()
    pdf.image(io.BytesIO(buf.getvalue()), x=10, y=10, w=190)
    return bytes(pdf.output())


def make_docx(text: str) -> bytes:
    from docx import Document

    doc = Document()
    for para in text.split("\n\n"):
        doc.add_paragraph(para.strip())
    table = doc.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "Signed for Acme Widgets Corp."
    table.rows[0].cells[1].text = "Signed for Beta Logistics LLC"
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 3]


def docx_with_broken_xml(data: bytes) -> bytes:
    """A DOCX whose main document part is not XML any more (the zip itself is intact)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            body = src.read(item.filename)
            if item.filename == "word/document.xml":
                body = body[: len(body) // 2]
            dst.writestr(item, body)
    return out.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CHINESE = ("采购合同\n\n甲方（买方）：上海华信贸易有限公司\n乙方（卖方）：深圳明达电子科技有限公司\n\n"
           "第一条 乙方向甲方供应电子元器件，合同总金额为人民币伍拾万元整。\n\n"
           "第二条 乙方应于本合同签订之日起三十日内将全部货物交付至甲方指定地点。")


def longest_cuad_contract():
    """The longest contract of the shipped CUAD corpus (338,211 characters): a review of minutes."""
    from contract_review.annotation.corpora import shipped_corpus

    return max((shipped_corpus("cuad") / "full_contract_txt").glob("*.txt"), key=lambda p: p.stat().st_size)


def start_server(args: list[str], env: dict, log_path, timeout: float = 300):
    """`contract-review serve ARGS` on a free port; (process, url) once it answers."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    from contract_review.paths import REPO_ROOT

    port = free_port()
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "contract_review.cli", "serve", "--port", str(port), *args],
                            cwd=REPO_ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1", **env}, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout  # the default model loads before the server listens
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited: {open(log_path).read()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code in (200, 401):
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"serve did not answer within {timeout} s")


def stop_server(proc) -> None:
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def count_files(root) -> int:
    import os

    return sum(len(files) for _, _, files in os.walk(root))
