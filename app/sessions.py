"""What each open page holds on the server, and its removal the moment the page closes.

    sessions = Sessions(temp_dir / "sessions", files)
    folder = sessions.folder(session_hash, owner)    # exports of this page, served to its owner only
    sessions.start(session_hash, job) / finish(...)   # the reviews it runs
    sessions.close(session_hash)                      # the page closed: reviews cancelled, folder removed

A page's folder lives under the server's private temporary folder (so Gradio serves its files
without copying them) and is deleted, with every record of its files, when the page closes
(Gradio's unload event, which fires when the browser's heartbeat stops) or when the server
stops. Reviews the page started are cancelled then too: nobody is left to read them.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .guard import FileOwners
from .jobs import Job


@dataclass
class _Session:
    owner: str = ""
    folder: Path | None = None
    jobs: set[int] = field(default_factory=set)


class Sessions:
    def __init__(self, root: str | Path, files: FileOwners):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.files = files
        self._sessions: dict[str, _Session] = {}
        self._jobs: dict[int, Job] = {}
        self._lock = threading.Lock()

    def _get(self, session_hash: str) -> _Session:
        return self._sessions.setdefault(session_hash or "", _Session())

    def folder(self, session_hash: str, owner: str) -> Path:
        """This page's folder for exports, made on first use (mode 0700)."""
        with self._lock:
            s = self._get(session_hash)
            s.owner = s.owner or owner
            if s.folder is None or not s.folder.is_dir():
                s.folder = Path(tempfile.mkdtemp(prefix="session-", dir=self.root))
            return s.folder

    def keep(self, session_hash: str, path: str | Path, owner: str) -> Path:
        """Record a file this page wrote, for its owner only."""
        self.files.register(path, owner)
        return Path(path)

    def start(self, session_hash: str, job: Job) -> None:
        with self._lock:
            self._get(session_hash).jobs.add(job.id)
            self._jobs[job.id] = job

    def finish(self, session_hash: str, job: Job) -> None:
        with self._lock:
            self._get(session_hash).jobs.discard(job.id)
            self._jobs.pop(job.id, None)

    def cancel(self, session_hash: str) -> int:
        """Cancel this page's reviews; how many there were."""
        with self._lock:
            jobs = [self._jobs[j] for j in self._get(session_hash).jobs if j in self._jobs]
        for job in jobs:
            job.cancel()
        return len(jobs)

    def running(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def close(self, session_hash: str) -> None:
        """The page closed: its reviews cancelled, its folder and the records of its files removed."""
        self.cancel(session_hash)
        with self._lock:
            s = self._sessions.pop(session_hash or "", None)
        if s and s.folder is not None:
            self.files.forget(s.folder)
            shutil.rmtree(s.folder, ignore_errors=True)

    def close_all(self) -> None:
        with self._lock:
            hashes = list(self._sessions)
        for h in hashes:
            self.close(h)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)
