"""`annotate pull`: annotations from Label Studio into the dataset, losing nothing.

    1. fetch   every task with annotations, page by page; each annotation version is appended
               to the journal (`journal.py`) as soon as its page arrives;
    2. resolve per clause, from the whole journal: one annotator -> their labels; several who
               agree -> the shared labels; several who disagree -> listed for adjudication and
               left out until an adjudicated annotation (Label Studio's ground-truth star)
               exists, which then wins over everyone;
    3. merge   the resolved clauses as `source: "annotation"` records into the dataset
               (`merge.py`: by document, split rules kept), with annotator, time and the model
               version of the pre-annotation the annotator corrected.

Steps 2-3 depend only on the journal and the dataset, so a pull repeats cleanly, and
`--offline` (no server) rebuilds from the journal alone.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from contract_review.prompt import INSTRUCTION, SYSTEM, Answer, build_input
from contract_review.records import ClauseRecord, write_jsonl
from contract_review.taxonomy import TaxonomyError, load_taxonomy

from .agreement import FieldAgreement, agreement_report
from .journal import Journal
from .label_studio import LabelStudioClient, LabelStudioError
from .labeling_config import AnnotatedLabels, labels_from_result
from .merge import MergeReport, merge_records
from .parties import Parties
from .risk import label_risk

LABEL_FIELDS = ("clause_types", "party", "risk_to", "severity", "risk_category")


# -- 1. fetch ---------------------------------------------------------------------------------
def entries_from_task(task: dict, users: dict[int, str], server: str, project_id: int) -> list[dict]:
    """One journal entry per annotation of a task (cancelled ones included, marked)."""
    data = task.get("data", {})
    versions = [p.get("model_version") for p in task.get("predictions", []) if p.get("model_version")]
    model_version = versions[-1] if versions else None
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out = []
    for ann in task.get("annotations", []):
        who = ann.get("completed_by")
        who_id = who.get("id") if isinstance(who, dict) else who
        entry = {
            "server": server, "project_id": project_id, "task_id": task["id"], "annotation_id": ann["id"],
            "updated_at": ann.get("updated_at") or ann.get("created_at"), "annotator_id": who_id,
            "annotator": users.get(who_id, f"user-{who_id}"), "ground_truth": bool(ann.get("ground_truth")),
            "was_cancelled": bool(ann.get("was_cancelled")), "lead_time": ann.get("lead_time"),
            "model_version": model_version, "clause": data, "journaled_at": now, "labels": None, "error": None,
        }
        if not entry["was_cancelled"]:
            try:
                entry["labels"] = labels_from_result(ann.get("result") or []).as_dict()
            except TaxonomyError as exc:  # kept in the journal all the same: nothing is dropped silently
                entry["error"] = str(exc)
        out.append(entry)
    return out


def fetch_into_journal(client: LabelStudioClient, project_id: int, journal: Journal,
                       progress: bool = True, page_size: int = 100) -> tuple[int, int]:
    """Append every annotation of the project to the journal; returns (tasks seen, new entries)."""
    users = client.users()
    known = journal.keys()
    tasks = new = 0
    bar = tqdm(desc="pulling tasks", unit="task", disable=not progress)
    for page in client.iter_task_pages(project_id, fields="all", page_size=page_size):
        entries = [e for t in page for e in entries_from_task(t, users, client.settings.url, project_id)]
        new += journal.append(entries, known)  # flushed before the next page is asked for
        tasks += len(page)
        bar.update(len(page))
    bar.close()
    return tasks, new


# -- 2. resolve ---------------------------------------------------------------------------------
@dataclass
class Resolved:
    clause: dict
    labels: AnnotatedLabels
    annotators: list[str]
    annotated_at: str
    model_version: str | None
    how: str  # "single" | "agreed" | "adjudicated"


@dataclass
class Resolution:
    resolved: list[Resolved] = field(default_factory=list)
    disagreements: list[dict] = field(default_factory=list)
    overlapped: list[list[dict]] = field(default_factory=list)  # label dicts of tasks with 2+ annotators
    problems: list[str] = field(default_factory=list)


def _differing(labels: list[AnnotatedLabels]) -> list[str]:
    out = []
    for i, name in enumerate(LABEL_FIELDS):
        if len({lab.key()[i] for lab in labels}) > 1:
            out.append(name)
    return out


def latest_versions(entries: list[dict]) -> list[dict]:
    """The latest journaled version of each annotation, oldest first (a later edit wins)."""
    latest: dict[tuple, dict] = {}
    for e in entries:
        k = (e["server"], e["project_id"], e["annotation_id"])
        if k not in latest or (e.get("updated_at") or "") >= (latest[k].get("updated_at") or ""):
            latest[k] = e
    return sorted(latest.values(), key=lambda e: (e.get("updated_at") or "", e["annotation_id"]))


def resolve(entries: list[dict]) -> Resolution:
    # the latest version of each annotation, then each annotator's latest annotation per clause
    by_clause: dict[str, dict[str, dict]] = defaultdict(dict)
    gt: dict[str, dict] = {}
    res = Resolution()
    for e in latest_versions(entries):
        cid = e["clause"].get("clause_id")
        if e["was_cancelled"]:
            continue
        if not cid or e.get("error"):
            res.problems.append(f"task {e['task_id']} annotation {e['annotation_id']}: "
                                f"{e.get('error') or 'task has no clause_id'}")
            continue
        labels = AnnotatedLabels.from_dict(e["labels"] or {})
        if not labels.clause_types or not labels.party:
            res.problems.append(f"task {e['task_id']} annotation {e['annotation_id']} by {e['annotator']}: "
                                "no clause type or no party chosen; skipped")
            continue
        if e["ground_truth"]:
            gt[cid] = e
        else:
            by_clause[cid][e["annotator"]] = e
    for cid in sorted(set(by_clause) | set(gt)):
        group = [by_clause[cid][a] for a in sorted(by_clause.get(cid, {}))]
        labs = [AnnotatedLabels.from_dict(e["labels"]) for e in group]
        if len(group) >= 2:
            res.overlapped.append([lab.as_dict() for lab in labs])
        if cid in gt:
            e = gt[cid]
            res.resolved.append(Resolved(e["clause"], AnnotatedLabels.from_dict(e["labels"]), [e["annotator"]],
                                         e["updated_at"], e["model_version"], "adjudicated"))
            continue
        differing = _differing(labs)
        if differing:
            e0 = group[0]
            res.disagreements.append({
                "clause_id": cid, "fields": differing, "task_id": e0["task_id"],
                "task_url": f"{e0['server']}/projects/{e0['project_id']}/data?task={e0['task_id']}",
                "text": e0["clause"].get("text", "")[:300],
                "annotations": {e["annotator"]: e["labels"] for e in group},
            })
            continue
        reasons = [lab.reason for lab in labs if lab.reason]
        merged = AnnotatedLabels(labs[0].clause_types, labs[0].party, labs[0].severity, labs[0].risk_category,
                                 reasons[0] if reasons else None, labs[0].risk_to)
        res.resolved.append(Resolved(group[0]["clause"], merged, [e["annotator"] for e in group],
                                     max(e["updated_at"] for e in group), group[-1]["model_version"],
                                     "single" if len(group) == 1 else "agreed"))
    return res


# -- 3. records ------------------------------------------------------------------------------------
def record_from_resolved(r: Resolved) -> ClauseRecord:
    """A dataset record; labels the annotator left empty take the taxonomy's defaults of the
    riskiest chosen clause type (as `data build` does), a bearer the annotator left empty comes
    from the rule pre-labeller (and the record says so), and the split is set by the merge."""
    tax = load_taxonomy()
    lab, c = r.labels, r.clause
    types = tax.order_types(lab.clause_types)
    top = tax.clause_type(types[0])
    severity = lab.severity or top.severity
    category = lab.risk_category or (top.risk_category if severity != "none" else "none")
    reason = lab.reason or tax.default_reason(top.id)
    party_names = dict(c.get("party_names") or {})
    aliases = {k: list(v) for k, v in (c.get("party_aliases") or {}).items()}
    risk_to, risk_labeller = lab.risk_to, "annotator"
    if severity == "none":
        risk_to = "none"
    elif risk_to is None or risk_to == "none":
        roles = Parties(party_names.get("first_party", ""), party_names.get("second_party", ""),
                        {"first_party": aliases.get("first_party", []), "second_party": aliases.get("second_party", [])})
        risk_to, risk_labeller = label_risk(c["text"], types, roles, tax=tax).risk_to, "annotator+rules"
        risk_to = "both" if risk_to == "none" else risk_to
    answer = Answer(tuple(types), lab.party, severity, category, reason, risk_to=risk_to, severity=severity)
    fields = {
        "id": c["clause_id"], "system": SYSTEM, "instruction": INSTRUCTION,
        "input": build_input(c["text"], party_names), "output": answer.to_json(),
        "source": "annotation", "doc_id": c["doc_id"], "split": "train",
        "start": int(c["start"]), "end": int(c["end"]), "text": c["text"],
        "clause_types": types, "party": lab.party, "party_names": party_names, "party_aliases": aliases,
        "risk_to": risk_to, "severity": severity, "risk": severity, "risk_category": category, "reason": reason,
        "type_labeller": "annotator", "party_labeller": "annotator", "risk_labeller": risk_labeller,
        "annotator": ",".join(r.annotators), "annotated_at": r.annotated_at, "model_version": r.model_version,
    }
    if c.get("fairness") is not None:
        fields["fairness"] = c["fairness"]
    return ClauseRecord.model_validate(fields)


@dataclass
class PullReport:
    tasks_seen: int = 0
    new_entries: int = 0
    journal_entries: int = 0
    resolution: Resolution = field(default_factory=Resolution)
    merge: MergeReport | None = None
    agreement: list[FieldAgreement] = field(default_factory=list)


def merge_journal(journal: Journal, dataset_dir: Path, disagreements_file: Path | None = None) -> PullReport:
    entries = journal.read()
    report = PullReport(journal_entries=len(entries))
    report.resolution = res = resolve(entries)
    records = []
    for r in res.resolved:
        try:
            records.append(record_from_resolved(r))
        except (ValueError, KeyError) as exc:
            res.problems.append(f"clause {r.clause.get('clause_id')}: cannot make a record ({exc})")
    report.merge = merge_records(dataset_dir, records)
    report.agreement = agreement_report(res.overlapped)
    if disagreements_file is not None:
        write_jsonl(disagreements_file, res.disagreements)
    return report


def pull(client: LabelStudioClient, project_title: str, journal: Journal, dataset_dir: Path,
         disagreements_file: Path | None = None, progress: bool = True, page_size: int = 100) -> PullReport:
    project = client.find_project(project_title)
    if project is None:
        raise LabelStudioError(f"no project {project_title!r} at {client.settings.url}; push clauses first with "
                               "`contract-review annotate push`")
    tasks, new = fetch_into_journal(client, project["id"], journal, progress, page_size)
    report = merge_journal(journal, dataset_dir, disagreements_file)
    report.tasks_seen, report.new_entries = tasks, new
    return report
