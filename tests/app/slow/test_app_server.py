"""The real server with --login, from the network's side: sign-in throttling, files served to their
owner only, no server path to choose, a DOCX bomb refused without inflating it, nothing left behind."""

from __future__ import annotations

import io
import os
import time
import zipfile

import httpx
import pytest
from app_files import SAMPLE, count_files, make_docx, start_server, stop_server

USER, PASSWORD = "reviewer", "correct-horse-battery"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    app_dir = tmp_path_factory.mktemp("app-data")
    temp = tmp_path_factory.mktemp("server-temp")
    proc, url = start_server(["--model", "rules", "--login"],
                             {"CONTRACT_REVIEW_APP_DIR": str(app_dir), "GRADIO_TEMP_DIR": str(temp),
                              "CONTRACT_REVIEW_APP_PASSWORD": PASSWORD, "CONTRACT_REVIEW_APP_USER": USER},
                             app_dir / "server.log")
    yield {"url": url, "temp": temp, "log": app_dir / "server.log", "pid": proc.pid}
    stop_server(proc)


def signed_in(url: str) -> httpx.Client:
    """A browser-like client: its own cookies (the owner cookie among them), signed in."""
    c = httpx.Client(base_url=url, timeout=30)
    c.get("/")
    r = c.post("/login", data={"username": USER, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return c


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_an_upload_is_served_to_the_browser_that_sent_it_and_to_nobody_else(server):
    a, b = signed_in(server["url"]), signed_in(server["url"])
    path = a.post("/gradio_api/upload", files=[("files", ("nda.txt", SAMPLE.encode()))]).json()[0]
    assert a.get(f"/gradio_api/file={path}").status_code == 200
    assert b.get(f"/gradio_api/file={path}").status_code == 404  # signed in, another browser: not found
    assert b.get(f"/gradio_api/file/{path}").status_code == 404  # Gradio's other file route too
    assert a.get(f"/gradio_api/file/{path}").status_code == 200
    assert httpx.get(f"{server['url']}/gradio_api/file={path}").status_code in (401, 403, 404)


def test_reviews_through_the_api_leave_no_file_and_offer_no_server_path(server, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    (tmp_path / "msa.txt").write_text(SAMPLE, encoding="utf-8")
    client = Client(server["url"], auth=(USER, PASSWORD), verbose=False)
    before = count_files(server["temp"])
    for _ in range(12):
        got = client.predict(handle_file(str(tmp_path / "msa.txt")), "", "rules", "", False, api_name="/review")
        assert got["summary"]["clauses"] == 6
    assert count_files(server["temp"]) == before
    print(f"12 reviews through the API: {count_files(server['temp']) - before} file(s) left behind")
    for probe in ("/root", "local", "/", "../data/model/reviewer"):
        with pytest.raises(AppError, match="Unknown model"):
            client.predict(None, SAMPLE, probe, "", False, api_name="/review")
    config = signed_in(server["url"]).get("/config").text
    assert "adapter folder" not in config.lower() and "base model folder" not in config.lower()


def test_a_docx_bomb_is_refused_before_it_is_inflated(server, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    src = zipfile.ZipFile(io.BytesIO(make_docx(SAMPLE)))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "word/document.xml":  # 256 MiB of padding: a 0.3 MB upload
                data = data.replace(b"<w:body>", b"<w:body>" + b" " * (256 * 1024 * 1024))
            out.writestr(info.filename, data)
            del data
    (tmp_path / "bomb.docx").write_bytes(buf.getvalue())
    client = Client(server["url"], auth=(USER, PASSWORD), verbose=False)
    before = rss_mb(server["pid"])
    with pytest.raises(AppError, match=r"bomb.docx unpacks to 256\.0 MB of text markup in one part, over the 40\.0 MB"):
        client.predict(handle_file(str(tmp_path / "bomb.docx")), "", "rules", "", False, api_name="/review")
    grew = rss_mb(server["pid"]) - before
    assert grew < 100
    print(f"a 256 MiB DOCX part refused; the server grew by {grew:.0f} MB")


def test_logs_name_no_file_and_hold_no_traceback(server):
    log = server["log"].read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log and "bomb.docx" not in log and "msa.txt" not in log and "nda.txt" not in log
    assert "reviewed a text of 837 characters: 6 clauses" in log


def test_sign_in_is_throttled_with_back_off(server):
    """Last in the module: it locks this address out."""
    url = server["url"]
    codes, t0 = [], time.monotonic()
    with httpx.Client(base_url=url, timeout=10) as c:
        for _ in range(50):
            r = c.post("/login", data={"username": USER, "password": "wrong-password"})
            codes.append(r.status_code)
        elapsed = time.monotonic() - t0
        assert codes[:5] == [400] * 5  # five free tries, each checked
        assert codes.count(400) <= 6 and codes.count(429) >= 44, codes
        assert "Too many failed sign-ins: try again in" in r.text and int(r.headers["retry-after"]) >= 1
        # the right password is refused too while the address waits: the password is not even checked
        assert c.post("/login", data={"username": USER, "password": PASSWORD}).status_code == 429
    print(f"50 wrong passwords in {elapsed:.1f} s: {codes.count(400)} checked, {codes.count(429)} refused unchecked")
    assert os.path.exists(server["log"])
