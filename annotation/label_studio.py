"""A small Label Studio REST client: projects, tasks with predictions, annotations, users.

Plain `httpx` against the REST API, not `label-studio-sdk`: the SDK pulls
opencv-python-headless, which caps numpy below 2.3 and would downgrade ours (2.4), and we
need only a dozen endpoints. Authentication is the legacy token (`Authorization: Token ...`)
that `label_studio_server` presets; it comes from CONTRACT_REVIEW_LS_TOKEN (or
LABEL_STUDIO_API_KEY) and is never printed.

Every call retries with exponential backoff when the server is unreachable or answers 5xx/429,
then stops with a message that names the fix. A POST is retried only when the request cannot
have reached the server (connection refused) or the server said it is unavailable (502-504),
so a retry never imports a batch twice; `push` also re-lists existing tasks on every run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from .label_studio_server import DEFAULT_URL

SERVER_HINT = "start it with `contract-review annotate server start`"


class LabelStudioError(RuntimeError):
    """Label Studio could not be reached or refused a request; the message names the fix."""


class ServerUnavailable(LabelStudioError):
    """The server did not answer (or answered 5xx) after every retry."""


@dataclass(frozen=True)
class ClientSettings:
    url: str = DEFAULT_URL
    token: str = field(default="", repr=False)
    tries: int = 5
    backoff: float = 0.5  # seconds before the 2nd try; doubles each time (0.5+1+2+4 = 7.5 s over 5 tries)
    timeout: float = 60.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> "ClientSettings":
        env = os.environ if env is None else env
        values: dict[str, Any] = {
            "url": env.get("CONTRACT_REVIEW_LS_URL", DEFAULT_URL).rstrip("/"),
            "token": env.get("CONTRACT_REVIEW_LS_TOKEN") or env.get("LABEL_STUDIO_API_KEY", ""),
        }
        if env.get("CONTRACT_REVIEW_LS_TRIES"):
            values["tries"] = int(env["CONTRACT_REVIEW_LS_TRIES"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        if not settings.token:
            raise LabelStudioError("no Label Studio API token: export CONTRACT_REVIEW_LS_TOKEN (the token the server was "
                                   "started with; see `contract-review annotate server --help`)")
        if settings.tries < 1:
            raise LabelStudioError(f"tries must be at least 1, got {settings.tries}")
        return settings


_RETRY_STATUS = {429, 500, 502, 503, 504}
_UNAVAILABLE = {502, 503, 504}


class LabelStudioClient:
    def __init__(self, settings: ClientSettings, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.settings = settings
        self._sleep = sleep
        self._http = httpx.Client(base_url=settings.url, timeout=settings.timeout, transport=transport,
                                  headers={"Authorization": f"Token {settings.token}"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "LabelStudioClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- one request, with retries --------------------------------------------------------
    def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None) -> Any:
        s = self.settings
        idempotent = method in ("GET", "HEAD", "PUT", "DELETE", "PATCH")
        last = ""
        for attempt in range(1, s.tries + 1):
            try:
                resp = self._http.request(method, path, json=json, params=params)
            except httpx.ConnectError as exc:  # never reached the server: safe to retry any method
                last = f"connection failed ({type(exc).__name__})"
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}"
                if not idempotent:
                    raise LabelStudioError(
                        f"Label Studio at {s.url} did not answer {method} {path} ({last}); it may have been applied: "
                        "run the command again (it skips what is already there)") from None
            else:
                if resp.status_code < 400:
                    return resp.json() if resp.content else None
                retryable = resp.status_code in (_RETRY_STATUS if idempotent else _UNAVAILABLE | {429})
                if not retryable:
                    raise self._error(method, path, resp)
                last = f"HTTP {resp.status_code}"
            if attempt < s.tries:
                self._sleep(s.backoff * 2 ** (attempt - 1))
        raise ServerUnavailable(f"Label Studio at {s.url} is not answering after {s.tries} tries ({last}); {SERVER_HINT}")

    def _error(self, method: str, path: str, resp: httpx.Response) -> LabelStudioError:
        s = self.settings
        if resp.status_code in (401, 403):
            return LabelStudioError(
                f"Label Studio at {s.url} rejected the API token (HTTP {resp.status_code}); export "
                "CONTRACT_REVIEW_LS_TOKEN with the token the server was first started with")
        try:
            body = resp.json()
            detail = body.get("validation_errors") or body.get("detail") or body
        except ValueError:
            detail = resp.text[:200]
        return LabelStudioError(f"Label Studio at {s.url} answered HTTP {resp.status_code} to {method} {path}: {detail}")

    # -- projects ---------------------------------------------------------------------------
    def find_project(self, title: str) -> dict | None:
        page = 1
        while True:
            body = self.request("GET", "/api/projects/", params={"title": title, "page": page, "page_size": 100})
            results = body.get("results", body) if isinstance(body, dict) else body
            for p in results:
                if p.get("title") == title:
                    return p
            if not isinstance(body, dict) or not body.get("next"):
                return None
            page += 1

    def create_project(self, title: str, label_config: str, description: str = "") -> dict:
        return self.request("POST", "/api/projects/", json={
            "title": title, "label_config": label_config, "description": description,
            # the stream shows low-score (uncertain) tasks first, matching our selection
            "sampling": "Uncertainty sampling", "show_collab_predictions": True})

    def update_project(self, project_id: int, **fields) -> dict:
        return self.request("PATCH", f"/api/projects/{project_id}/", json=fields)

    def get_project(self, project_id: int) -> dict:
        return self.request("GET", f"/api/projects/{project_id}/")

    # -- tasks --------------------------------------------------------------------------------
    def iter_task_pages(self, project_id: int, fields: str = "all", page_size: int = 100) -> Iterator[list[dict]]:
        """Every task of a project, a page at a time (`fields="all"` includes annotations and
        predictions; "task_only" just the data)."""
        page = 1
        while True:
            body = self.request("GET", "/api/tasks/", params={"project": project_id, "page": page,
                                                              "page_size": page_size, "fields": fields})
            tasks = body.get("tasks", [])
            if tasks:
                yield tasks
            if not tasks or page * page_size >= int(body.get("total", 0)):
                return
            page += 1

    def import_tasks(self, project_id: int, tasks: list[dict]) -> list[int]:
        body = self.request("POST", f"/api/projects/{project_id}/import", params={"return_task_ids": "true"}, json=tasks)
        return list(body.get("task_ids", []))

    def set_overlap(self, task_id: int, annotators: int) -> None:
        self.request("PATCH", f"/api/tasks/{task_id}/", json={"overlap": annotators})

    # -- annotations and users (annotators' side; tests and scripts use them) -------------------
    def create_annotation(self, task_id: int, result: list[dict], completed_by: int | None = None,
                          ground_truth: bool = False, lead_time: float | None = None) -> dict:
        body: dict[str, Any] = {"result": result, "ground_truth": ground_truth}
        if completed_by is not None:
            body["completed_by"] = completed_by
        if lead_time is not None:
            body["lead_time"] = lead_time
        return self.request("POST", f"/api/tasks/{task_id}/annotations/", json=body)

    def users(self) -> dict[int, str]:
        """User id -> e-mail (annotations name their annotator by id)."""
        body = self.request("GET", "/api/users/")
        return {u["id"]: u.get("email") or u.get("username") or str(u["id"]) for u in body}

    def create_user(self, email: str, username: str = "", first_name: str = "") -> dict:
        return self.request("POST", "/api/users/", json={"email": email, "username": username or email.split("@")[0],
                                                         "first_name": first_name})

    def find_or_create_user(self, name: str, domain: str) -> int:
        """The id of the user `name` (e-mail name@domain), created on first use: how an annotator who labels
        outside the UI (a label file) appears in Label Studio."""
        email = f"{name}@{domain}"
        for uid, who in self.users().items():
            if who == email:
                return uid
        return int(self.create_user(email, username=name, first_name=name)["id"])

    def update_task_data(self, task_id: int, data: dict) -> dict:
        return self.request("PATCH", f"/api/tasks/{task_id}/", json={"data": data})

    def ensure_view(self, project_id: int, title: str, data_field: str) -> dict:
        """A Data Manager tab of the project listing the tasks whose `data_field` is not empty."""
        views = self.request("GET", "/api/dm/views/", params={"project": project_id}) or []
        for view in views:
            if (view.get("data") or {}).get("title") == title:
                return view
        flt = {"conjunction": "and", "items": [{"filter": f"filter:tasks:{data_field}", "operator": "not_empty",
                                                "type": "String", "value": ""}]}
        return self.request("POST", "/api/dm/views/", json={"project": project_id,
                                                            "data": {"title": title, "filters": flt}})
