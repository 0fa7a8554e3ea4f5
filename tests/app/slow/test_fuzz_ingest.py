"""A seeded, bounded fuzz run of reading uploads and of the review API, on real files and the real server.

Phase 1, ingest only (no model): 8,500 files, each sent alone through `ReviewService.read_upload` (what the
page and the API call: `read_contract`, then the upload is deleted) in a forked worker process:
  - 3,000 PDFs: small valid PDFs made with fpdf2, then truncated, bit-flipped, spliced with chunks of
    another PDF, with the xref table or `startxref` zeroed, with numbers (lengths, counts, offsets)
    made huge or negative, chunks deleted or repeated, or random bytes behind a `%PDF-` header;
  - 2,500 DOCX: valid files made with python-docx, then with a member's XML corrupted or truncated,
    `word/document.xml` (or another required part) missing, sizes in the zip's directory made huge,
    an unknown compression method, byte-level damage to the zip, deeply nested XML, or non-zip bytes;
  - 3,000 texts: random bytes, UTF-8/Windows-1252/UTF-16 pieces mixed, byte-order marks on text of another
    encoding, NUL bytes, lines of up to 300,000 characters, a text over the length limit, empty and blank
    files, lone surrogates.
  Each file is named with its format's suffix, one in ten with another format's. A file must be read,
  or refused with `IngestError` (shown as `UserFacing`); any other exception fails the test. Each case has
  CASE_LIMIT_S = 10 s (measured on 2 busy cores: 8 ms a case on average, 2.4 s the slowest); a case over
  it fails the test and the worker is replaced. After each case the upload folder and the worker's
  temporary folder must be empty, and no message may name a server path.
Phase 2, the real server (`serve --model rules`): 30 of those files (10 of each format, valid ones among
  them) through the `/review` API; after each, the server must answer a page request and hold no upload,
  and no answer may be an unexpected failure; its log must hold no traceback.
Measured on 2 shared cores: phase 1 in about 75 s, phase 2 in about 10 s plus 20 s to start the
server; under 2 minutes in all. Every case is rebuilt from (SEED, format, index): a
failure names them, so it can be replayed alone with `case(format, index)`.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import random
import struct
import time
import traceback
import uuid
import zipfile
from collections import Counter
from pathlib import Path

import httpx
import pytest
from app_files import SAMPLE, CHINESE, count_files, make_docx, make_paged_pdf, make_pdf, start_server, stop_server

from contract_review.app.guard import FileOwners
from contract_review.app.ingest import MAX_CHARS
from contract_review.app.service import AppConfig, ReviewService, UserFacing
from contract_review.app.sessions import Sessions

SEED = int(os.environ.get("CONTRACT_REVIEW_FUZZ_SEED", "20261204"))
COUNTS = {"pdf": 3000, "docx": 2500, "text": 3000}
CASE_LIMIT_S = 10.0
SERVER_CASES = 10  # per format
OWNER = "fuzz-owner"
SUFFIXES = {"pdf": ".pdf", "docx": ".docx", "text": ".txt"}
OTHER_SUFFIXES = (".pdf", ".docx", ".txt", ".md", "", ".PDF", ".text")

CLAUSES = [p for p in SAMPLE.split("\n\n") if p.strip()]


def _contract_text(rng: random.Random) -> str:
    paras = [rng.choice(CLAUSES) for _ in range(rng.randint(2, 9))]
    if rng.random() < 0.2:
        paras.append(CHINESE)
    return "\n\n".join(paras)


# -- valid files, made once per seed --------------------------------------------------------------------

_BASES: dict[str, list[bytes]] = {}


def bases(kind: str) -> list[bytes]:
    if not _BASES:
        rng = random.Random(f"{SEED}-bases")
        _BASES["pdf"] = [make_pdf(_contract_text(rng)) for _ in range(5)] + [
            make_paged_pdf(_contract_text(rng) * 3, "Confidential", "Acme / Beta")]
        _BASES["docx"] = [make_docx(_contract_text(rng)) for _ in range(5)]
    return _BASES[kind]


# -- byte mutations ---------------------------------------------------------------------------------------

def _flip(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 64)):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(1, len(data))]


def _splice(rng: random.Random, data: bytes, other: bytes) -> bytes:
    i, j = sorted(rng.randrange(len(other)) for _ in range(2))
    at = rng.randrange(len(data))
    return data[:at] + other[i:j] + data[at + (rng.randrange(j - i + 1) if rng.random() < 0.5 else 0):]


def _cut(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data))
    return data[:i] + data[i + rng.randint(1, 2000):]


def _repeat(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data))
    chunk = data[i: i + rng.randint(1, 4000)]
    return data[:i] + chunk * rng.randint(2, 20) + data[i:]


def _zero_xref(rng: random.Random, data: bytes) -> bytes:
    at = data.rfind(b"xref")
    if at < 0 or rng.random() < 0.3:  # or the pointer to it
        at = data.rfind(b"startxref")
        if at < 0:
            return data
        end = data.find(b"%%EOF", at)
        return data[:at] + b"startxref\n" + rng.choice([b"0", b"999999999", b"-5", b"abc"]) + b"\n" + data[end:]
    n = rng.randint(20, 2000)
    return data[:at] + (b"\0" * n if rng.random() < 0.5 else b"0" * n) + data[at + n:]


def _numbers(rng: random.Random, data: bytes) -> bytes:
    """Lengths, counts and object numbers made absurd: where parsers trust what a file says of itself."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        key = rng.choice([b"/Length ", b"/Count ", b"/Size ", b"/N ", b" 0 R", b"/W [", b"/Prev ", b"/First "])
        at = b.find(key, rng.randrange(len(b)))
        if at < 0:
            at = b.find(key)
        if at < 0:
            continue
        at += len(key) if not key.startswith(b" ") else 0
        val = rng.choice([b"-1", b"0", b"99999999999", b"4294967296", b"1e308", b"NaN", b"2147483647"])
        b[at:at + rng.randint(1, 6)] = val
    return bytes(b)


def _pdf_random(rng: random.Random, data: bytes) -> bytes:
    body = rng.randbytes(rng.randint(0, 20000))
    if rng.random() < 0.5:  # random PDF-ish tokens, which pypdf tries harder to parse
        toks = [b"obj", b"endobj", b"<<", b">>", b"stream\n", b"endstream", b"/Type /Page", b"/Kids [",
                b"]", b"trailer", b"xref", b"startxref", b"%%EOF", b"1 0 R", b"(", b")", b"BT", b"ET", b"Tj"]
        body = b" ".join(rng.choice(toks) if rng.random() < 0.7 else str(rng.randint(-9, 99999)).encode()
                         for _ in range(rng.randint(1, 3000)))
    return b"%PDF-1." + str(rng.randint(0, 9)).encode() + b"\n" + body


def pdf_case(rng: random.Random) -> tuple[str, bytes]:
    base = rng.choice(bases("pdf"))
    ops = [("truncate", _truncate), ("flip", _flip), ("zero-xref", _zero_xref), ("numbers", _numbers),
           ("cut", _cut), ("repeat", _repeat), ("splice", None), ("random", _pdf_random)]
    if rng.random() < 0.03:
        return "valid", base
    data, names = base, []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        op, fn = rng.choice(ops)
        names.append(op)
        data = _splice(rng, data, rng.choice(bases("pdf"))) if fn is None else fn(rng, data)
        if not data:
            data = b"%PDF-"
    return "+".join(names), data


# -- DOCX -------------------------------------------------------------------------------------------------

def _rezip(members: list[tuple[zipfile.ZipInfo, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info, body in members:
            z.writestr(info, body)
    return out.getvalue()


def _members(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    z = zipfile.ZipFile(io.BytesIO(data))
    return [(i, z.read(i.filename)) for i in z.infolist()]


def _patch_sizes(rng: random.Random, data: bytes) -> bytes:
    """Sizes (or the compression method) in the local headers and the central directory made huge or wrong."""
    b = bytearray(data)
    for sig, size_at, method_at in ((b"PK\x01\x02", 24, 10), (b"PK\x03\x04", 22, 8)):
        at = b.find(sig)
        while at >= 0:
            if rng.random() < 0.5:
                what = rng.random()
                if what < 0.6:
                    struct.pack_into("<I", b, at + size_at, rng.choice([0xFFFFFFFF, 0x7FFFFFFF, 0, 1, 10**9]))
                elif what < 0.8:
                    struct.pack_into("<I", b, at + size_at - 4, rng.choice([0xFFFFFFFF, 0, 1]))  # compressed size
                else:
                    struct.pack_into("<H", b, at + method_at, rng.choice([1, 6, 12, 14, 99, 0xFFFF]))
            at = b.find(sig, at + 4)
    return bytes(b)


def docx_case(rng: random.Random) -> tuple[str, bytes]:
    base = rng.choice(bases("docx"))
    r = rng.random()
    if r < 0.03:
        return "valid", base
    if r < 0.25:
        members = _members(base)
        k = rng.randrange(len(members))
        info, body = members[k]
        how = rng.choice(["flip", "truncate", "garbage", "entity", "deep"])
        if how == "flip":
            body = _flip(rng, body)
        elif how == "truncate":
            body = _truncate(rng, body)
        elif how == "garbage":
            body = rng.randbytes(rng.randint(0, 5000))
        elif how == "entity":  # an entity declaration: lxml must not expand it
            body = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "' + b"A" * 1000 + b'">'
                    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>' + body.split(b"?>", 1)[-1].replace(
                        b"</w:t>", b"&b;</w:t>", 1))
        else:  # nesting deeper than any document
            depth = rng.choice([100, 1000, 5000])
            body = body.replace(b"<w:body>", b"<w:body>" + b"<w:sdt><w:sdtContent>" * depth
                                + b"</w:sdtContent></w:sdt>" * depth, 1)
        members[k] = (info, body)
        return f"member-{how}:{info.filename}", _rezip(members)
    if r < 0.4:
        members = _members(base)
        gone = rng.choice(["word/document.xml", "[Content_Types].xml", "_rels/.rels",
                           "word/_rels/document.xml.rels", "word/styles.xml"])
        return f"missing:{gone}", _rezip([(i, b) for i, b in members if i.filename != gone])
    if r < 0.6:
        return "sizes", _patch_sizes(rng, base)
    if r < 0.7:
        junk = rng.choice([rng.randbytes(rng.randint(1, 30000)), b"PK\x03\x04" + rng.randbytes(rng.randint(0, 5000)),
                           b"PK\x05\x06" + b"\0" * 18, (_contract_text(rng)).encode()])
        return "non-zip", junk
    if r < 0.8:
        extra = [(zipfile.ZipInfo(f"word/media/x{i}.bin"), b"") for i in range(rng.choice([10, 6000]))]
        members = _members(base) + extra
        return "many-parts", _rezip(members)
    ops = [("truncate", _truncate), ("flip", _flip), ("cut", _cut), ("repeat", _repeat)]
    op, fn = rng.choice(ops)
    return f"bytes-{op}", fn(rng, base) or b"PK"


# -- text -------------------------------------------------------------------------------------------------

ENCODINGS = ("utf-8", "cp1252", "latin-1", "utf-16-le", "utf-16-be", "utf-16", "utf-32", "utf-8-sig")
BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")


def _encode(text: str, codec: str) -> bytes:
    return text.encode(codec, errors="replace")


def text_case(rng: random.Random) -> tuple[str, bytes]:
    r = rng.random()
    text = _contract_text(rng) + " Überweisung café – “quoted” €100"
    if r < 0.12:
        return "random", rng.randbytes(rng.choice([1, 2, 3, 7, 100, 5000, 60000]))
    if r < 0.3:
        return "mixed-encodings", b"".join(_encode(rng.choice(CLAUSES), rng.choice(ENCODINGS))
                                           for _ in range(rng.randint(2, 8)))
    if r < 0.42:
        return "bom-mismatch", rng.choice(BOMS) + _encode(text, rng.choice(ENCODINGS))
    if r < 0.55:
        b = bytearray(_encode(text, rng.choice(ENCODINGS)))
        for _ in range(rng.randint(1, 200)):
            b.insert(rng.randrange(len(b) + 1), 0)
        return "nuls", bytes(b)
    if r < 0.62:
        n = rng.choice([10_000, 100_000, 300_000])
        line = "".join(rng.choice("abcdefghij ") for _ in range(1000)) * (n // 1000)
        line = line if rng.random() < 0.5 else line.replace(" ", "")
        return f"long-line-{n}", _encode(line, rng.choice(["utf-8", "utf-16"]))
    if r < 0.64:
        return "over-length", (SAMPLE * (MAX_CHARS // len(SAMPLE) + 2)).encode()
    if r < 0.7:
        return "blank", rng.choice([b"", b" ", b"\n\n\n", b"\t \r\n", b"\xef\xbb\xbf", b"\xff\xfe", b"\x00" * 64,
                                    "\u3000\u00a0".encode("utf-8"), b"\x0c\x0b\x1f"])
    if r < 0.76:
        return "surrogates", text.encode("utf-8").replace(b" ", b"\xed\xa0\x80", rng.randint(1, 20))
    if r < 0.88:
        return "encoded", _encode(text, rng.choice(ENCODINGS))
    return "flipped", _flip(rng, _encode(text, rng.choice(ENCODINGS)))


GENERATORS = {"pdf": pdf_case, "docx": docx_case, "text": text_case}


def case(kind: str, index: int) -> tuple[str, str, bytes]:
    """(name, mutation, bytes) of one case, rebuilt from the seed alone."""
    rng = random.Random(f"{SEED}-{kind}-{index}")
    mutation, data = GENERATORS[kind](rng)
    suffix = SUFFIXES[kind] if rng.random() < 0.9 else rng.choice(OTHER_SUFFIXES)
    return f"case-{kind}-{index}{suffix}", mutation, data


# -- the worker -------------------------------------------------------------------------------------------

def _worker(conn, root: str, tmp: str) -> None:
    """Read each upload as the server does; report how it went. Runs in a forked process."""
    import tempfile

    os.environ["TMPDIR"] = tmp
    tempfile.tempdir = tmp
    files = FileOwners(root)
    service = ReviewService(AppConfig(), files, Sessions(os.path.join(os.path.dirname(tmp), "sessions"), files))
    while True:
        job = conn.recv()
        if job is None:
            return
        name, data = job
        folder = os.path.join(root, uuid.uuid4().hex)  # one folder per upload, as Gradio makes them
        os.mkdir(folder)
        path = os.path.join(folder, name)
        with open(path, "wb") as fh:
            fh.write(data)
        files.register(path, OWNER)
        try:
            contract = service.read_upload(path, name, OWNER)
            conn.send(("read", f"{contract.kind} of {len(contract.text)} characters"))
        except UserFacing as exc:
            conn.send(("refused", str(exc)))
        except BaseException as exc:  # noqa: BLE001 -- the crash under test, reported to the parent
            conn.send(("crash", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-3000:]}"))


class Worker:
    def __init__(self, root: Path, tmp: Path):
        self.root, self.tmp = root, tmp
        self.start()

    def start(self) -> None:
        ctx = multiprocessing.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, str(self.root), str(self.tmp)), daemon=True)
        self.proc.start()

    def run(self, name: str, data: bytes) -> tuple[str, str, float]:
        t0 = time.monotonic()
        self.conn.send((name, data))
        if not self.conn.poll(CASE_LIMIT_S):
            self.proc.kill()
            self.proc.join()
            self.start()
            return "hang", f"no answer within {CASE_LIMIT_S:.0f} s", time.monotonic() - t0
        outcome, detail = self.conn.recv()
        return outcome, detail, time.monotonic() - t0

    def stop(self) -> None:
        self.conn.send(None)
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()


def test_thousands_of_damaged_files_are_read_or_refused_clearly_in_time_leaving_nothing(tmp_path):
    root, tmp = tmp_path / "uploads", tmp_path / "worker-temp"
    root.mkdir()
    tmp.mkdir()
    bases("pdf")  # made before the worker forks, so it inherits them
    worker = Worker(root, tmp)
    worker.run("warm-up.pdf", bases("pdf")[0])  # imports pypdf and python-docx outside any case's time
    worker.run("warm-up.docx", bases("docx")[0])
    failures, outcomes, slowest = [], Counter(), (0.0, "")
    server_paths = (str(tmp_path), str(root), str(tmp), os.path.realpath(tmp_path))
    t0 = time.monotonic()
    try:
        for kind, n in COUNTS.items():
            for i in range(n):
                name, mutation, data = case(kind, i)
                outcome, detail, took = worker.run(name, data)
                outcomes[kind, outcome] += 1
                slowest = max(slowest, (took, f"{kind} {i} ({mutation})"))
                where = f"SEED={SEED} case({kind!r}, {i}) [{mutation}, {len(data):,} bytes, {name}]"
                if outcome in ("crash", "hang"):
                    failures.append(f"{where}: {outcome}: {detail}")
                if any(p in detail for p in server_paths) or "/tmp/" in detail:
                    failures.append(f"{where}: the message names a server path: {detail}")
                if outcome == "refused" and not detail.startswith(name):
                    failures.append(f"{where}: the message does not name the file: {detail}")
                left = count_files(root) + count_files(tmp) + len(os.listdir(root)) + len(os.listdir(tmp))
                if left:
                    failures.append(f"{where}: {left} file(s)/folder(s) left behind: "
                                    f"{os.listdir(root)} {os.listdir(tmp)}")
                    for p in (root, tmp):  # cleared, so the next case is judged alone
                        for sub in sorted(p.rglob("*"), reverse=True):
                            sub.rmdir() if sub.is_dir() else sub.unlink()
    finally:
        worker.stop()
    elapsed = time.monotonic() - t0
    total = sum(COUNTS.values())
    print(f"\n{total} cases in {elapsed:.1f} s (seed {SEED}); outcomes: "
          + ", ".join(f"{k} {o}: {c}" for (k, o), c in sorted(outcomes.items()))
          + f"; slowest case {slowest[0]:.2f} s: {slowest[1]}")
    assert not failures, f"{len(failures)} failing case(s):\n" + "\n".join(failures[:20])
    for kind in COUNTS:  # the mutations reach both outcomes: valid files are read, broken ones refused
        assert outcomes[kind, "read"] > 0 and outcomes[kind, "refused"] > 0, outcomes


# -- phase 2: the real server -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    app_dir = tmp_path_factory.mktemp("fuzz-app-data")
    temp = tmp_path_factory.mktemp("fuzz-server-temp")
    proc, url = start_server(["--model", "rules"],
                             {"CONTRACT_REVIEW_APP_DIR": str(app_dir), "GRADIO_TEMP_DIR": str(temp)},
                             app_dir / "server.log")
    yield {"url": url, "temp": temp, "log": app_dir / "server.log", "proc": proc}
    stop_server(proc)


def server_cases() -> list[tuple[str, str, bytes]]:
    """SERVER_CASES files of each format, with the format's own suffix (the page refuses others before
    reading); the first of each is a valid file."""
    out = []
    for kind in COUNTS:
        picked = [(f"valid-{kind}{SUFFIXES[kind]}", "valid",
                   bases(kind)[0] if kind != "text" else SAMPLE.encode("utf-16"))]
        i = 0
        while len(picked) < SERVER_CASES:
            name, mutation, data = case(kind, i)
            i += 1
            if name.endswith(SUFFIXES[kind]) and data.strip() and mutation not in {m for _, m, _ in picked}:
                picked.append((name, mutation, data))
        out += picked
    return out


def test_the_server_reviews_or_refuses_damaged_files_and_keeps_answering_with_nothing_left(server, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(server["url"], verbose=False)
    before = count_files(server["temp"])
    outcomes, t0 = Counter(), time.monotonic()
    for name, mutation, data in server_cases():
        path = tmp_path / name
        path.write_bytes(data)
        try:
            got = client.predict(handle_file(str(path)), "", "rules", "", False, api_name="/review")
            assert got["summary"]["clauses"] >= 1, (name, mutation, got["summary"])
            outcomes["reviewed"] += 1
        except AppError as exc:
            message = str(exc)
            assert "unexpectedly" not in message, (name, mutation, message)
            assert str(server["temp"]) not in message and "/tmp/" not in message, (name, mutation, message)
            outcomes["refused"] += 1
        assert server["proc"].poll() is None, f"the server exited after {name} ({mutation})"
        assert httpx.get(server["url"], timeout=10).status_code == 200, f"no answer after {name} ({mutation})"
        assert count_files(server["temp"]) == before, f"{name} ({mutation}) left a file behind"
    print(f"\n{sum(outcomes.values())} files through /review in {time.monotonic() - t0:.1f} s: {dict(outcomes)}")
    assert outcomes["reviewed"] >= 3 and outcomes["refused"] >= 3, outcomes
    log = server["log"].read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log and " failed: " not in log, log[-3000:]
