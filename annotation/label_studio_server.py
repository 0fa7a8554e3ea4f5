"""Start, check and stop a local Label Studio server: the one command users, tests and CI share.

    contract-review annotate server start     # install on first use, start, wait until ready
    contract-review annotate server status
    contract-review annotate server stop

Label Studio lives in its own virtual environment (default `.venv-ls/` in the repository,
created from PyPI on first start): its pins fight ours (opencv-python-headless caps numpy
below 2.3; we run numpy 2.4). Our code talks to it over HTTP only (`label_studio.py`).

Settings come from the environment, so that secrets never sit in a command line, a file of
ours or a log:

    CONTRACT_REVIEW_LS_URL        where the server listens (default http://127.0.0.1:8080; the
                                  host must be a loopback address: the server is local only)
    CONTRACT_REVIEW_LS_USER       the admin's e-mail (default admin@contract-review.local)
    CONTRACT_REVIEW_LS_PASSWORD   the admin's password (required to start)
    CONTRACT_REVIEW_LS_TOKEN      the admin's API token, 6-40 letters/digits (required; the
                                  client also accepts LABEL_STUDIO_API_KEY)
    CONTRACT_REVIEW_LS_DATA       the server's data folder (default ~/.cache/contract-review/label-studio)
    CONTRACT_REVIEW_LS_VENV       the server's virtual environment (default .venv-ls)

The token and the user are set when a data folder is first created; a later start with a
different token is detected (the readiness check authenticates) and reported with the fix.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx

from contract_review.paths import REPO_ROOT, cache_dir

LABEL_STUDIO_VERSION = "1.23.2"
LOCK_FILE = REPO_ROOT / "requirements" / "label-studio.lock"
DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_USER = "admin@contract-review.local"
_TOKEN_RE = re.compile(r"^[A-Za-z0-9]{6,40}$")  # DRF token keys are at most 40 characters
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# environment a Label Studio process may inherit; everything else is left out because it reads
# plain names as settings too (a stray USERNAME or PORT would be picked up)
_PASS_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE",
                 "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CERT", "PIP_DEFAULT_TIMEOUT",
                 "PIP_DISABLE_PIP_VERSION_CHECK", "PIP_CONFIG_FILE")


class ServerError(RuntimeError):
    """The server could not be installed, started, reached or stopped; the message says the fix."""


@dataclass(frozen=True)
class ServerSettings:
    url: str = DEFAULT_URL
    user: str = DEFAULT_USER
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)
    data_dir: Path = field(default_factory=lambda: cache_dir() / "label-studio")
    venv: Path = REPO_ROOT / ".venv-ls"
    version: str = LABEL_STUDIO_VERSION

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> "ServerSettings":
        env = os.environ if env is None else env
        values = {
            "url": env.get("CONTRACT_REVIEW_LS_URL", DEFAULT_URL),
            "user": env.get("CONTRACT_REVIEW_LS_USER", DEFAULT_USER),
            "password": env.get("CONTRACT_REVIEW_LS_PASSWORD", ""),
            "token": env.get("CONTRACT_REVIEW_LS_TOKEN") or env.get("LABEL_STUDIO_API_KEY", ""),
        }
        if env.get("CONTRACT_REVIEW_LS_DATA"):
            values["data_dir"] = Path(env["CONTRACT_REVIEW_LS_DATA"])
        if env.get("CONTRACT_REVIEW_LS_VENV"):
            values["venv"] = Path(env["CONTRACT_REVIEW_LS_VENV"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    # -- validation at the edge -------------------------------------------------------------
    def check(self) -> "ServerSettings":
        parsed = urlparse(self.url)
        if parsed.scheme != "http" or parsed.hostname is None:
            raise ServerError(f"CONTRACT_REVIEW_LS_URL={self.url!r} is not an http://HOST:PORT address")
        if parsed.hostname not in _LOOPBACK:
            raise ServerError(f"CONTRACT_REVIEW_LS_URL host {parsed.hostname!r} is not local; the server only "
                              "listens on 127.0.0.1 (use http://127.0.0.1:PORT)")
        if not self.password:
            raise ServerError("CONTRACT_REVIEW_LS_PASSWORD is not set; export the admin password to use "
                              "before starting the server")
        if not _TOKEN_RE.match(self.token or ""):
            raise ServerError("CONTRACT_REVIEW_LS_TOKEN is missing or malformed; export 6-40 letters and digits, "
                              "e.g. `export CONTRACT_REVIEW_LS_TOKEN=$(python -c 'import secrets; "
                              "print(secrets.token_hex(20))')`")
        return self

    @property
    def host(self) -> str:
        return urlparse(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlparse(self.url).port or 8080

    @property
    def executable(self) -> Path:
        return self.venv / "bin" / "label-studio"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "server.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def redact(self, text: str) -> str:
        """Hide the secrets in text we show (a log tail): they must never reach a terminal or CI log."""
        for secret in (self.password, self.token):
            if secret:
                text = text.replace(secret, "***")
        return text


# -- the virtual environment ----------------------------------------------------------------
def _installed_marker(s: ServerSettings) -> Path:
    return s.venv / f".installed-label-studio-{s.version}"


def ensure_installed(s: ServerSettings, quiet: bool = False) -> Path:
    """Create the server's own virtual environment and install Label Studio into it, once."""
    if _installed_marker(s).exists() and s.executable.exists():
        return s.executable
    if not quiet:
        print(f"installing label-studio=={s.version} into {s.venv} (first start only, ~1-2 min)", file=sys.stderr)
    s.data_dir.mkdir(parents=True, exist_ok=True)
    log = s.data_dir / "install.log"
    with open(log, "w", encoding="utf-8") as fh:
        steps = [
            [sys.executable, "-m", "venv", str(s.venv)],
            _pip_install_command(s),
        ]
        for cmd in steps:
            if subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=_child_env(s, with_secrets=False)).returncode:
                tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
                raise ServerError(f"installing Label Studio failed ({' '.join(cmd[-3:])}); see {log}:\n{tail}\n"
                                  f"fix the cause (network to PyPI?) and run the start command again")
    _installed_marker(s).touch()
    return s.executable


def _pip_install_command(s: ServerSettings) -> list[str]:
    """Label Studio and its dependencies at the versions (and hashes) of requirements/label-studio.lock,
    so every machine runs the same server; a bare version pin only where the lock is missing."""
    pip = [str(s.venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    if LOCK_FILE.exists() and f"label-studio=={s.version}" in LOCK_FILE.read_text(encoding="utf-8"):
        return [*pip, "--no-deps", "--require-hashes", "-r", str(LOCK_FILE)]
    return [*pip, f"label-studio=={s.version}"]


def _child_env(s: ServerSettings, with_secrets: bool = True) -> dict[str, str]:
    env = {k: os.environ[k] for k in _PASS_THROUGH if k in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    if with_secrets:
        env.update({
            "LABEL_STUDIO_BASE_DATA_DIR": str(s.data_dir),
            "LABEL_STUDIO_USERNAME": s.user,
            "LABEL_STUDIO_PASSWORD": s.password,
            "LABEL_STUDIO_USER_TOKEN": s.token,
            # a preset token is a legacy token: without this every API call gets 401
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            "LABEL_STUDIO_HOST": s.url,
            # a local server phones nowhere: no PyPI version check, no analytics, no Sentry reports
            "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
            "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
            "LABEL_STUDIO_SENTRY_DSN": "",
            "LABEL_STUDIO_FRONTEND_SENTRY_DSN": "",
        })
    return env


# -- readiness --------------------------------------------------------------------------------
def probe(s: ServerSettings, timeout: float = 3.0) -> str:
    """'down', 'starting' (answers but not yet ready), 'wrong-token' or 'ready'."""
    try:
        health = httpx.get(f"{s.url}/health", timeout=timeout)
        if health.status_code != 200:
            return "starting"
        who = httpx.get(f"{s.url}/api/current-user/whoami", headers={"Authorization": f"Token {s.token}"},
                        timeout=timeout)
    except httpx.HTTPError:
        return "down"
    if who.status_code in (401, 403):
        return "wrong-token"
    return "ready" if who.status_code == 200 else "starting"


def _pid(s: ServerSettings) -> int | None:
    try:
        pid = int(s.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def _log_tail(s: ServerSettings, n: int = 30) -> str:
    try:
        lines = s.log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-n:]
    except FileNotFoundError:
        return "(no log)"
    return s.redact("\n".join(lines))


def start(s: ServerSettings, timeout: float = 240.0, quiet: bool = False) -> str:
    """Start the server in the background (its own process group) and wait until the API answers
    to the token. Returns 'started' or 'already running'."""
    s.check()
    state = probe(s)
    if state == "ready":
        return "already running"
    if state == "wrong-token":
        raise ServerError(f"a Label Studio at {s.url} is running but rejects CONTRACT_REVIEW_LS_TOKEN; export the token "
                          "it was first started with, or stop it and use another data folder (CONTRACT_REVIEW_LS_DATA)")
    if state == "starting" and _pid(s):
        return _wait(s, _pid(s), timeout, quiet) or "started"
    if state != "down":
        raise ServerError(f"something else answers at {s.url}; choose a free port with CONTRACT_REVIEW_LS_URL")
    exe = ensure_installed(s, quiet)
    s.data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [str(exe), "start", "--no-browser", "--internal-host", s.host, "-p", str(s.port),
           "--data-dir", str(s.data_dir), "--enable-legacy-api-token"]
    if not quiet:
        print(f"starting Label Studio {s.version} at {s.url} (data: {s.data_dir}; log: {s.log_file})", file=sys.stderr)
    with open(s.log_file, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=_child_env(s), cwd=s.data_dir, start_new_session=True)
    s.pid_file.write_text(str(proc.pid))
    _wait(s, proc.pid, timeout, quiet, proc)
    return "started"


def _wait(s: ServerSettings, pid: int, timeout: float, quiet: bool, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.5
    while time.monotonic() < deadline:
        state = probe(s)
        if state == "ready":
            if not quiet:
                print(f"Label Studio is ready at {s.url}", file=sys.stderr)
            return None
        if state == "wrong-token":
            raise ServerError(f"Label Studio at {s.url} started but rejects CONTRACT_REVIEW_LS_TOKEN: its data folder "
                              f"{s.data_dir} was created with another token; export that token or remove the folder")
        exited = proc.poll() is not None if proc else _pid(s) is None
        if exited:
            raise ServerError(f"Label Studio exited while starting; last lines of {s.log_file}:\n{_log_tail(s)}")
        time.sleep(delay)
        delay = min(delay * 1.5, 3.0)
    raise ServerError(f"Label Studio at {s.url} was not ready after {timeout:.0f} s; last lines of {s.log_file}:\n"
                      f"{_log_tail(s)}")


def stop(s: ServerSettings, timeout: float = 20.0) -> str:
    """Stop the server this data folder's pid file names (only that process group)."""
    pid = _pid(s)
    if pid is None:
        s.pid_file.unlink(missing_ok=True)
        return "not running"
    try:
        os.killpg(pid, signal.SIGTERM)  # the group we created with start_new_session
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    s.pid_file.unlink(missing_ok=True)
    return "stopped"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def status(s: ServerSettings) -> str:
    state = probe(s)
    pid = _pid(s)
    where = f" (pid {pid}, data {s.data_dir})" if pid else ""
    return f"{s.url}: {state}{where}"
