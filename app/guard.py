"""What stands between the network and the app: sign-in throttling and files served to their owner only.

    files = FileOwners(temp_dir)
    app_kwargs = {"middleware": guard_middleware(files, throttle=LoginThrottle())}   # given to Gradio's launch

Two ASGI middlewares, in front of every route Gradio serves:

- `LoginThrottle`: failed sign-ins are counted per client address. After `free` failures
  (5) each further attempt must wait twice as long as the one before (1 s, 2 s, 4 s ... up
  to 15 minutes); an attempt made too early is answered 429 with `Retry-After` and never
  reaches the password check. A success clears the address. Across all addresses, more than
  `global_per_minute` failures in a minute close sign-in for everyone until the minute has
  passed, so many addresses cannot multiply the rate (the price: a flood of failures keeps
  everyone out for that minute). One address gets 10 checked attempts in the first minute,
  17 in the first hour.
- `SessionFiles`: the browser gets a random owner cookie (HttpOnly, SameSite=Strict) on its
  first request. Every upload is recorded under the owner that sent it (from the upload's
  answer), every export under the owner whose event wrote it (`FileOwners.register`), and a
  file under the server's temporary folder is served only to its owner: anyone else, with
  the path or without, gets 404. Nothing else of Gradio's routes changes.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from http.cookies import SimpleCookie
from pathlib import Path

OWNER_COOKIE = "cr-owner"
FILE_ROUTES = ("/gradio_api/file=", "/gradio_api/file/")  # Gradio serves files under both
UPLOAD_ROUTE = "/gradio_api/upload"
LOGIN_ROUTES = ("/login", "/login/")


def _cookie(scope: dict, name: str) -> str:
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            jar = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed header: no owner
                return ""
            if name in jar:
                return jar[name].value
    return ""


def owner_of(request) -> str:
    """The owner cookie of a Gradio event's request ("" for a client that keeps no cookies)."""
    try:
        cookies = request.cookies
        return cookies[OWNER_COOKIE] if OWNER_COOKIE in cookies else ""
    except Exception:  # no request (a direct call) or no cookies
        return ""


async def _plain(send, status: int, message: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


# -- files -----------------------------------------------------------------------------------------

class FileOwners:
    """Which owner each file under the server's temporary folder belongs to."""

    def __init__(self, root: str | os.PathLike):
        self.root = os.path.realpath(root)
        self._owners: dict[str, str] = {}
        self._lock = threading.Lock()

    def _key(self, path: str | os.PathLike) -> str:
        return os.path.realpath(path)

    def under_root(self, path: str | os.PathLike) -> bool:
        key = self._key(path)
        return key == self.root or key.startswith(self.root + os.sep)

    def register(self, path: str | os.PathLike, owner: str) -> None:
        with self._lock:
            self._owners[self._key(path)] = owner

    def owner(self, path: str | os.PathLike) -> str | None:
        with self._lock:
            return self._owners.get(self._key(path))

    def allowed(self, path: str | os.PathLike, owner: str) -> bool:
        """Whether `owner` may read `path`: anything outside the temporary folder is Gradio's business;
        inside it, only a file recorded under this (non-empty) owner."""
        if not self.under_root(path):
            return True
        return bool(owner) and self.owner(path) == owner

    def forget(self, path: str | os.PathLike) -> None:
        """Forget a file, or every file under a folder."""
        key = self._key(path)
        with self._lock:
            for k in [k for k in self._owners if k == key or k.startswith(key + os.sep)]:
                del self._owners[k]

    def __len__(self) -> int:
        return len(self._owners)


class SessionFiles:
    """ASGI middleware: the owner cookie, uploads recorded under their owner, files served to it alone."""

    def __init__(self, app, files: FileOwners):
        self.app, self.files = app, files

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        owner = _cookie(scope, OWNER_COOKIE)
        fresh = "" if owner else secrets.token_urlsafe(32)
        path = scope.get("path", "")
        for route in FILE_ROUTES:
            if path.startswith(route) and not self.files.allowed(path[len(route):], owner):
                return await _plain(send, 404, "File not found.")
        upload = path == UPLOAD_ROUTE and scope.get("method") == "POST"
        chunks: list[bytes] = []
        status = {"code": 0}

        async def wrapped(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                if fresh:
                    cookie = (f"{OWNER_COOKIE}={fresh}; Path=/; HttpOnly; SameSite=Strict").encode()
                    message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            elif message["type"] == "http.response.body" and upload and status["code"] == 200:
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    self._record(b"".join(chunks), owner)
            await send(message)

        await self.app(scope, receive, wrapped)

    def _record(self, body: bytes, owner: str) -> None:
        try:
            paths = json.loads(body)
        except ValueError:
            return
        for p in paths if isinstance(paths, list) else []:
            if isinstance(p, str):
                self.files.register(p, owner)


# -- sign-in ---------------------------------------------------------------------------------------

class LoginThrottle:
    """Failed sign-ins per address, with exponential back-off, and a ceiling for all addresses."""

    def __init__(self, free: int = 5, max_wait: float = 900.0, global_per_minute: int = 30,
                 clock: Callable[[], float] = time.monotonic):
        self.free, self.max_wait, self.global_per_minute, self.clock = free, max_wait, global_per_minute, clock
        self._fails: dict[str, tuple[int, float]] = {}  # address -> (failures, time of the last)
        self._recent: deque[float] = deque()  # times of failures, all addresses, last minute
        self._lock = threading.Lock()

    def wait(self, address: str) -> float:
        """Seconds before `address` may try again (0: now)."""
        now = self.clock()
        with self._lock:
            while self._recent and now - self._recent[0] > 60:
                self._recent.popleft()
            if len(self._recent) >= self.global_per_minute:
                return max(0.0, 60 - (now - self._recent[0]))
            fails, last = self._fails.get(address, (0, 0.0))
            if fails < self.free:
                return 0.0
            delay = min(self.max_wait, 2.0 ** (fails - self.free))
            return max(0.0, last + delay - now)

    def failed(self, address: str) -> None:
        now = self.clock()
        with self._lock:
            fails, _ = self._fails.get(address, (0, 0.0))
            self._fails[address] = (fails + 1, now)
            self._recent.append(now)
            if len(self._fails) > 100_000:  # a flood of addresses: keep memory bounded, oldest out
                for key in sorted(self._fails, key=lambda k: self._fails[k][1])[:50_000]:
                    del self._fails[key]

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._fails.pop(address, None)


class LoginGuard:
    """ASGI middleware: `LoginThrottle` in front of Gradio's sign-in route."""

    def __init__(self, app, throttle: LoginThrottle):
        self.app, self.throttle = app, throttle

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path") not in LOGIN_ROUTES or scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        address = (scope.get("client") or ("unknown", 0))[0]
        wait = self.throttle.wait(address)
        if wait > 0:
            return await _plain(send, 429, f"Too many failed sign-ins: try again in {math.ceil(wait)} s.",
                                [(b"retry-after", str(math.ceil(wait)).encode())])
        status = {"code": 0}

        async def wrapped(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, wrapped)
        if status["code"] == 200:
            self.throttle.succeeded(address)
        else:
            self.throttle.failed(address)


def guard_middleware(files: FileOwners, throttle: LoginThrottle | None = None) -> list:
    """The middleware list for Gradio's FastAPI app (`launch(app_kwargs={"middleware": ...})`)."""
    from starlette.middleware import Middleware

    out = [Middleware(SessionFiles, files=files)]
    if throttle is not None:
        out.append(Middleware(LoginGuard, throttle=throttle))
    return out


def remove_upload(path: str | os.PathLike, files: FileOwners | None = None) -> None:
    """Delete an upload and the folder Gradio made for it (one per upload), and forget it."""
    p = Path(path)
    try:
        p.unlink(missing_ok=True)
    except OSError:
        pass
    if files is not None:
        files.forget(p)
        if files.under_root(p.parent) and os.path.realpath(p.parent) != files.root:
            try:
                p.parent.rmdir()  # empty now; a folder still holding something stays
            except OSError:
                pass
