"""Fixtures of the annotation tests: small records and datasets made here, and the real
Label Studio server, started once per session with the same command users run."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from contract_review.paths import REPO_ROOT
from annotation_records import make_record
from contract_review.records import write_records

@pytest.fixture
def small_dataset(tmp_path) -> Path:
    """Three documents, one per split, as .jsonl.gz like the shipped dataset."""
    d = tmp_path / "dataset"
    recs = {
        "train": [make_record("cuad/docA/0-40", "docA", "train", "Beta LLC shall pay the fees within 30 days.", "second_party"),
                  make_record("cuad/docA/50-90", "docA", "train", "This Agreement is governed by New York law.", start=50)],
        "validation": [make_record("cuad/docV/0-40", "docV", "validation", "Acme Corp. shall deliver the goods.", "first_party")],
        "test": [make_record("cuad/docT/0-40", "docT", "test", "Neither party shall assign this Agreement.", "both")],
    }
    for split, rs in recs.items():
        write_records(d / f"{split}.jsonl.gz", rs)
    return d


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, env: dict[str, str]):
        self.env = env
        self.url = env["CONTRACT_REVIEW_LS_URL"]

    def command(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        # the users' command, `contract-review annotate ...`, from this environment's Python
        return subprocess.run([sys.executable, "-m", "contract_review.cli", "annotate", *args], env=self.env,
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)

    def stop(self) -> None:
        self.command("server", "stop")


@pytest.fixture(scope="session")
def ls_server(tmp_path_factory):
    """A real Label Studio on a free loopback port with a fresh data folder. The token and the
    password come from the environment when set there, else fresh random ones; never printed."""
    env = dict(os.environ)
    env.setdefault("CONTRACT_REVIEW_LS_PASSWORD", secrets.token_urlsafe(16))
    env.setdefault("CONTRACT_REVIEW_LS_TOKEN", secrets.token_hex(20))
    env["CONTRACT_REVIEW_LS_URL"] = f"http://127.0.0.1:{_free_port()}"
    env["CONTRACT_REVIEW_LS_DATA"] = str(tmp_path_factory.mktemp("label-studio"))
    env["CONTRACT_REVIEW_LS_TRIES"] = "3"
    server = Server(env)
    started = server.command("server", "start", "--quiet", timeout=600)
    if started.returncode:
        for secret in (env["CONTRACT_REVIEW_LS_TOKEN"], env["CONTRACT_REVIEW_LS_PASSWORD"]):
            assert secret not in started.stdout + started.stderr, "a secret reached the output"
        pytest.fail(f"Label Studio did not start:\n{started.stderr[-3000:]}")
    yield server
    server.stop()
