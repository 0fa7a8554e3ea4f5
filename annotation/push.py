"""`annotate push`: clauses into Label Studio as tasks with pre-annotations.

    1. the project: found by title, or created with the labeling config generated from the
       taxonomy (`labeling_config.py`); a config that drifted from the taxonomy is updated;
    2. the clauses already in the project (by `clause_id`) are skipped: pushing twice adds nothing;
    3. the rest are predicted (a `Predictor`: the reviewer model, or `RulePredictor`), and the
       next batch is picked from them (`tasks.select_batch`: uncertain first, a random share,
       overlap tasks for two annotators);
    4. they are imported in chunks, each with its prediction (`model_version`, `score`) so the
       annotator corrects instead of starting blank; overlap tasks get `overlap` = 2.

A push stopped half-way (server down) is finished by running it again: step 2 sees what
arrived. Clauses come from a records file (a dataset split) or from plain-text contracts,
segmented and with their parties read from the opening.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from contract_review.predictor import ClauseInput, Predictor
from contract_review.records import read_records

from .label_studio import LabelStudioClient
from .labeling_config import labeling_config, parties_text, result_from_labels
from .tasks import Candidate, Picked, SelectionConfig, select_batch

DEFAULT_PROJECT = "contract-review clauses"
IMPORT_CHUNK = 100


@dataclass(frozen=True)
class Clause:
    """What a task carries: enough to rebuild a dataset record when the annotation comes back."""

    id: str
    doc_id: str
    source: str
    start: int
    end: int
    text: str
    party_names: dict[str, str] = field(default_factory=dict)
    fairness: int | None = None
    party_aliases: dict[str, list[str]] = field(default_factory=dict)
    context: str = ""  # the clause's heading or lead-in, when known

    def task_data(self, picked: Picked) -> dict:
        data = {
            "clause_id": self.id, "doc_id": self.doc_id, "source": self.source, "start": self.start,
            "end": self.end, "text": self.text, "party_names": self.party_names, "party_aliases": self.party_aliases,
            "parties": parties_text(self.party_names, self.party_aliases), "context": self.context,
            "selected_as": picked.why, "annotators": picked.annotators,
        }
        if self.fairness is not None:
            data["fairness"] = self.fairness
        return data


def clauses_from_records(path: Path) -> list[Clause]:
    return [Clause(r.id, r.doc_id, r.source, r.start, r.end, r.text, dict(r.party_names), r.fairness,
                   {k: list(v) for k, v in r.party_aliases.items()}, r.model_dump().get("context") or "")
            for r in read_records(path) if r.source != "augmented"]


def clauses_from_contracts(folder: Path) -> list[Clause]:
    """Plain-text contracts (*.txt): segmented into clauses, parties read from the opening."""
    from .parties import contract_parties
    from .segment import segment

    files = sorted(Path(folder).glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"{folder}: no .txt contracts; give a folder of plain-text contracts")
    out = []
    for f in files:
        text = f.read_text(encoding="utf-8", errors="replace")
        plist = contract_parties(text)
        for seg in segment(text):
            out.append(Clause(f"user/{f.stem}/{seg.start}-{seg.end}", f.stem, "user", seg.start, seg.end,
                              seg.text, plist.names(), party_aliases=plist.aliases()))
    return out


@dataclass
class PushReport:
    project_id: int = 0
    project_created: bool = False
    config_updated: bool = False
    already_there: int = 0
    imported: int = 0
    overlap_tasks: int = 0
    model_version: str = ""


def ensure_project(client: LabelStudioClient, title: str) -> tuple[dict, bool, bool]:
    config = labeling_config()
    project = client.find_project(title)
    if project is None:
        return client.create_project(title, config, "Clauses to label: see data/guidelines.md"), True, False
    if project.get("label_config") != config:
        return client.update_project(project["id"], label_config=config), False, True
    return project, False, False


def existing_tasks(client: LabelStudioClient, project_id: int) -> dict[str, dict]:
    out = {}
    for page in client.iter_task_pages(project_id, fields="task_only"):
        for t in page:
            cid = t.get("data", {}).get("clause_id")
            if cid:
                out[cid] = t
    return out


def push(client: LabelStudioClient, clauses: list[Clause], predictor: Predictor, selection: SelectionConfig,
         title: str = DEFAULT_PROJECT, progress: bool = True) -> PushReport:
    report = PushReport(model_version=predictor.model_version)
    project, report.project_created, report.config_updated = ensure_project(client, title)
    pid = report.project_id = project["id"]
    have = existing_tasks(client, pid)
    unique = list({c.id: c for c in clauses}.values())
    new = [c for c in unique if c.id not in have]
    report.already_there = len(unique) - len(new)
    if new:
        preds = predictor.predict([ClauseInput(c.text, c.party_names) for c in new], progress=progress)
        by_id = {c.id: (c, p) for c, p in zip(new, preds)}
        picked = select_batch([Candidate(c.id, p.confidence) for c, p in zip(new, preds)], selection)
        tasks = []
        for pk in picked:
            clause, pred = by_id[pk.key]
            task = {"data": clause.task_data(pk)}
            if pred.answer is not None:  # a prediction the model could not produce is left out, not faked
                task["predictions"] = [{"result": result_from_labels(pred.answer), "score": pred.confidence,
                                        "model_version": predictor.model_version}]
            tasks.append(task)
        with tqdm(total=len(tasks), desc="pushing tasks", unit="task", disable=not progress) as bar:
            for i in range(0, len(tasks), IMPORT_CHUNK):
                chunk = tasks[i : i + IMPORT_CHUNK]
                client.import_tasks(pid, chunk)
                report.imported += len(chunk)
                bar.update(len(chunk))
        # the stream shows this model's predictions as pre-annotations
        client.update_project(pid, model_version=predictor.model_version)
        have = existing_tasks(client, pid)
    # overlap is set after import and re-checked on every push, so an interrupted push heals
    for t in have.values():
        wanted = int(t.get("data", {}).get("annotators", 1))
        if wanted > 1 and int(t.get("overlap", 1)) != wanted:
            client.set_overlap(t["id"], wanted)
    report.overlap_tasks = sum(int(t.get("data", {}).get("annotators", 1)) > 1 for t in have.values())
    return report
