"""The real app, started with `contract-review serve`, driven in headless Chromium (Debian's,
never a browser Playwright downloads), and its API through Gradio's client.

One server for the module (the default model when the shipped adapter is there, else the
rules predictor, said in the test output), an upload limit of 1 MB so the oversize case is
quick, and a private CONTRACT_REVIEW_APP_DIR. The screenshot lands in runs/app-browser/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from app_files import SAMPLE, free_port

from contract_review.app.predictors import default_available
from contract_review.paths import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
SCREENSHOTS = REPO_ROOT / "runs" / "app-browser"
MODEL = "default" if default_available() else "rules"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    app_dir = tmp_path_factory.mktemp("app-data")
    port = free_port()
    env = {**os.environ, "CONTRACT_REVIEW_APP_DIR": str(app_dir), "PYTHONUNBUFFERED": "1"}
    log = open(app_dir / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "contract_review.cli", "serve", "--port", str(port),
                             "--model", MODEL, "--max-mb", "1", "--concurrency", "2"],
                            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 240  # the default model loads before the server listens
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited: {(app_dir / 'server.log').read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("serve did not answer within 240 s")
    print(f"\napp served at {url} with --model {MODEL}")
    yield {"url": url, "app_dir": app_dir, "log": app_dir / "server.log"}
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    outside: list[str] = []
    pg.on("request", lambda r: outside.append(r.url)
          if not r.url.startswith((server["url"], "data:", "blob:")) else None)
    pg.goto(server["url"])
    pg.wait_for_selector("#review-btn")
    yield pg
    context.close()
    assert not outside, f"the page reached outside the machine: {outside[:5]}"


def upload_and_review(pg, path: Path) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    # right after a reload the file input can exist before Gradio has hydrated it, and a file set then is
    # dropped (seen once in a full local run: the name never appeared); setting it again once is what a
    # user would do. A file the app never shows still fails here.
    for attempt in (1, 2):
        pg.set_input_files("#upload input[type=file]", str(path))
        try:
            pg.wait_for_selector(f"#upload >> text={path.name[:20]}", timeout=15_000)  # the upload arrived
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
    pg.click("#review-btn")


def pick(pg, elem_id: str, option: str) -> None:
    """Choose an option of a Gradio dropdown."""
    pg.click(f"#{elem_id} input")
    pg.click(f"#{elem_id} [role=option]:has-text('{option}')")


def test_lawyer_reviews_corrects_and_exports_a_real_contract(page, server, cuad_test_contract, tmp_path):
    pg = page
    t0 = time.time()
    upload_and_review(pg, cuad_test_contract)
    pg.wait_for_selector("#summary-view", timeout=120_000)
    review_s = time.time() - t0
    status = pg.inner_text("#status")
    assert "flagged" in status and cuad_test_contract.name[:30] in status
    summary = pg.inner_text("#summary")
    assert "Highest risks" in summary and "Usual clauses not found" in summary and "Parties" in summary
    assert "high risk" in summary and "medium risk" in summary

    # risky clauses are highlighted in the contract text
    pg.click("button[role=tab]:has-text('Contract')")
    pg.wait_for_selector("#contract-view .clause")
    assert pg.locator("#contract-view .clause.risk-high, #contract-view .clause.risk-medium").count() > 0
    pg.click("button[role=tab]:has-text('Clauses')")

    # sort by risk: the first row is a flagged clause; click it to see it in context
    pick(pg, "sort", "Risk (highest first)")
    pg.wait_for_function("() => /HIGH|MEDIUM/.test(document.querySelector('#clause-table [data-testid=cell-0-1]')"
                         "?.innerText || '')")
    pg.click("#clause-table [data-testid=cell-0-2]")
    pg.wait_for_selector("#context-view")
    context = pg.inner_text("#context-view")
    index = int(context.split("Clause ", 1)[1].split()[0])
    assert "obliges" in context

    # correct its risk to low: saved locally at once
    pick(pg, "correct-risk", "low")
    pg.click("#save-correction")
    pg.wait_for_selector(f"#correct-status >> text=Saved the correction of clause {index}")
    saved = [json.loads(line) for line in (server["app_dir"] / "corrections.jsonl").read_text().splitlines()]
    assert saved[-1]["after"]["risk"] == "low" and saved[-1]["before"]["risk"] in ("high", "medium")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SCREENSHOTS / "review.png"), full_page=True)

    # export the Word report and open it
    pg.click("button[role=tab]:has-text('Export')")
    pg.click("#export-docx")
    link = pg.locator("#export-file a").first
    link.wait_for()
    with pg.expect_download() as dl:
        link.click()
    report = tmp_path / "report.docx"
    dl.value.save_as(report)
    from docx import Document

    text = "\n".join(p.text for p in Document(str(report)).paragraphs)
    assert f"Clause {index}: LOW risk" in text and "corrected by reviewer" in text
    clause = [json.loads(line) for line in (server["app_dir"] / "corrections.jsonl").read_text().splitlines()][-1]
    assert clause["text"] in text  # the finding quotes its clause
    pg.screenshot(path=str(SCREENSHOTS / "export.png"), full_page=False)
    print(f"reviewed in the browser in {review_s:.1f} s; screenshots in {SCREENSHOTS}")


def test_broken_files_get_clear_messages_and_the_app_keeps_answering(page, bad_files, tmp_path):
    pg = page
    oversize = tmp_path / "oversize.txt"
    oversize.write_bytes(b"The Supplier shall deliver. " * 45_000)  # 1.2 MB, over the 1 MB limit
    cases = {bad_files["truncated.pdf"]: "could not be read as a PDF",
             bad_files["broken-xml.docx"]: "could not be read as a Word .docx",
             bad_files["empty.txt"]: "is empty",
             oversize: "over the 1.0 MB limit"}
    for path, message in cases.items():
        pg.reload()
        pg.wait_for_selector("#review-btn")
        upload_and_review(pg, path)
        pg.wait_for_selector(f"#status >> text={message}", timeout=60_000)
        assert path.name in pg.inner_text("#status")
    # still answering: a pasted contract is reviewed
    pg.reload()
    pg.click("text=…or paste the contract's text")
    pg.fill("#paste textarea", SAMPLE)
    pg.click("#review-btn")
    pg.wait_for_selector("#summary-view >> text=Acme Widgets Corp.", timeout=120_000)


def test_api_returns_the_same_json_as_the_review_command(server, tmp_path):
    from gradio_client import Client, handle_file

    (tmp_path / "msa.txt").write_text(SAMPLE, encoding="utf-8")
    client = Client(server["url"], verbose=False)
    got = client.predict(handle_file(str(tmp_path / "msa.txt")), "", MODEL, "", "", api_name="/review")
    run = subprocess.run([sys.executable, "-m", "contract_review.cli", "review", str(tmp_path / "msa.txt"),
                          "--out", str(tmp_path / "out"), "--model", MODEL, "--quiet"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    expected = json.loads((tmp_path / "out" / "msa.review.json").read_text(encoding="utf-8"))
    for volatile in ("created_at", "seconds"):
        got.pop(volatile), expected.pop(volatile)
    assert got == expected

    from gradio_client.exceptions import AppError

    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(AppError, match="is empty"):
        client.predict(handle_file(str(tmp_path / "empty.txt")), "", MODEL, "", "", api_name="/review")
    assert httpx.get(server["url"], timeout=5).status_code == 200


def test_logs_carry_no_contract_text(server):
    log = server["log"].read_text(encoding="utf-8", errors="replace")
    for line in SAMPLE.splitlines()[2:]:
        if len(line) > 30:
            assert line[:40] not in log
