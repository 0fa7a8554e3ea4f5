"""Reviewers' corrections: saved locally the moment they are made, sent to Label Studio later.

    store = CorrectionStore(app_dir() / "corrections.jsonl")
    store.add(correction_from(review, finding))             # appended and fsync'ed at once
    send_to_label_studio(store, client)                      # -> SendReport

The store is an append-only JSON-lines file: a correction is never lost to a crash, and a
clause corrected twice keeps both lines (the latest wins). Sending reuses `annotate push`
(`annotation.push.push`): each corrected clause becomes a task of the same project, with
the model's original labels as the pre-annotation, and the reviewer's labels are then added
as an annotation of that task, so `annotate pull` merges them into the dataset like any
annotator's work. Sent corrections are recorded in a second file beside the store, so
sending again adds nothing twice.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from contract_review.predictor import ClauseInput, ClausePrediction
from contract_review.prompt import Answer

from .review import Finding, Review


def app_dir() -> Path:
    """Where the app keeps what a user chose to keep: corrections and saved reviews.
    CONTRACT_REVIEW_APP_DIR, else $XDG_DATA_HOME/contract-review (~/.local/share/...)."""
    root = os.environ.get("CONTRACT_REVIEW_APP_DIR")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "contract-review"


@dataclass(frozen=True)
class Correction:
    clause_id: str  # user/<doc_id>/<start>-<end>, as `annotate push` names clauses of contracts
    doc_id: str
    start: int
    end: int
    text: str
    party_names: dict[str, str]
    before: dict  # the model's labels (Answer fields)
    after: dict  # the reviewer's labels (Answer fields)
    model_version: str
    corrected_at: str
    reviewer: str = ""
    contract_name: str = ""

    @property
    def key(self) -> str:
        return f"{self.clause_id}@{self.corrected_at}"

    def answer(self, which: str = "after") -> Answer:
        d = self.before if which == "before" else self.after
        return Answer(tuple(d["clause_types"]), d["party"], d["risk"], d["risk_category"], d["reason"])


def _labels(f: Finding) -> dict:
    return {"clause_types": list(f.clause_types), "party": f.party, "risk": f.risk,
            "risk_category": f.risk_category, "reason": f.reason}


def correction_from(review: Review, finding: Finding, reviewer: str = "") -> Correction:
    before = dict(finding.original or _labels(finding))
    before.pop("confidence", None)
    doc_id = review.contract["doc_id"]
    return Correction(
        clause_id=f"user/{doc_id}/{finding.start}-{finding.end}", doc_id=doc_id, start=finding.start,
        end=finding.end, text=finding.text, party_names=review.party_names, before=before,
        after=_labels(finding), model_version=review.model["model_version"],
        corrected_at=datetime.now(timezone.utc).isoformat(timespec="microseconds"), reviewer=reviewer,
        contract_name=review.contract["name"])


class CorrectionStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.sent_path = self.path.with_name(self.path.stem + ".sent.jsonl")
        self._lock = threading.Lock()

    def add(self, c: Correction) -> None:
        self._append(self.path, asdict(c))

    def _append(self, path: Path, obj: dict) -> None:
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # clause text: owner only
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
                fh.flush()
                os.fsync(fh.fileno())

    def all(self) -> list[Correction]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(Correction(**json.loads(line)))
        return out

    def latest(self) -> list[Correction]:
        """The newest correction of each clause."""
        by_clause: dict[str, Correction] = {}
        for c in self.all():
            by_clause[c.clause_id] = c
        return list(by_clause.values())

    def sent_keys(self) -> set[str]:
        if not self.sent_path.exists():
            return set()
        return {json.loads(line)["key"] for line in self.sent_path.read_text(encoding="utf-8").splitlines() if line}

    def unsent(self) -> list[Correction]:
        sent = self.sent_keys()
        return [c for c in self.latest() if c.key not in sent]

    def mark_sent(self, c: Correction, task_id: int, annotation_id: int | None, server: str) -> None:
        self._append(self.sent_path, {"key": c.key, "clause_id": c.clause_id, "task_id": task_id,
                                      "annotation_id": annotation_id, "server": server,
                                      "sent_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})


class _ModelLabels:
    """A `Predictor` that answers with the labels the model gave in the app, so the task's
    pre-annotation shows what the model said and the annotation what the reviewer fixed."""

    name = "app-review"

    def __init__(self, corrections: Sequence[Correction]):
        self._by_text = {c.text: c for c in corrections}
        versions = sorted({c.model_version for c in corrections})
        self.model_version = versions[0] if len(versions) == 1 else "app-review:" + "+".join(versions)

    def predict(self, clauses: Sequence[ClauseInput], progress: bool = False) -> list[ClausePrediction]:
        return [ClausePrediction(answer=self._by_text[c.text].answer("before"), confidence=0.0) for c in clauses]


@dataclass
class SendReport:
    project_id: int = 0
    sent: int = 0
    already_sent: int = 0
    task_ids: list[int] = field(default_factory=list)


def send_to_label_studio(store: CorrectionStore, client, title: str | None = None) -> SendReport:
    """Push the corrected clauses as tasks (the `annotate push` code) and add each reviewer's
    labels as an annotation. Raises `annotation.label_studio.LabelStudioError` naming the fix
    when the server is down or refuses the token."""
    from contract_review.annotation.labeling_config import result_from_labels
    from contract_review.annotation.push import DEFAULT_PROJECT, Clause, existing_tasks, push
    from contract_review.annotation.tasks import SelectionConfig

    report = SendReport()
    pending = store.unsent()
    report.already_sent = len(store.latest()) - len(pending)
    if not pending:
        return report
    clauses = [Clause(c.clause_id, c.doc_id, "user", c.start, c.end, c.text, dict(c.party_names))
               for c in pending]
    # every corrected clause goes (no sampling), each to one annotator: the reviewer already decided
    selection = SelectionConfig(batch_size=len(clauses), random_share=0.0, overlap_share=0.0)
    pushed = push(client, clauses, _ModelLabels(pending), selection, title or DEFAULT_PROJECT, progress=False)
    report.project_id = pushed.project_id
    tasks = existing_tasks(client, pushed.project_id)
    for c in pending:
        task = tasks.get(c.clause_id)
        if task is None:
            raise RuntimeError(f"clause {c.clause_id} was pushed but is not in project {pushed.project_id}")
        ann = client.create_annotation(task["id"], result_from_labels(c.answer("after")))
        store.mark_sent(c, task["id"], (ann or {}).get("id"), client.settings.url)
        report.sent += 1
        report.task_ids.append(task["id"])
    return report
