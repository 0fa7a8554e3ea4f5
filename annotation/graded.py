"""The graded set in Label Studio: two independent annotators per clause, their disagreements,
the adjudicated label, and graded records.

    annotate sample ...                                    draw the clauses (annotation/sample.py)
    annotate graded push --sample DIR                      one task per sampled clause, no pre-annotation
    annotate graded import --labels FILE --annotator NAME  an annotator's label file as that annotator's annotations
    annotate graded disagreements                          mark where two annotators differ; a Data Manager tab
    annotate graded import --labels FILE --annotator NAME --adjudication
                                                           an adjudicator's decisions as ground-truth annotations
    annotate pull --graded                                 graded records, and Cohen's kappa on severity and risk_to

Annotators are Label Studio users (Label Studio 1.23 community edition has no per-annotation
author field besides the user): `import` creates the user `NAME` (e-mail NAME@annotators.local)
if needed and files each label as an annotation completed by that user, so two independent
annotators' labels sit side by side on each task, exactly as if each had labelled in the UI;
the import says which file it came from, and importing the same file twice adds nothing. An
adjudicator reviews a disagreeing task in Label Studio (the "Risk disagreements" tab lists them,
with both annotations on each), labels it and marks that annotation as ground truth (the star),
or imports decisions with `--adjudication`. Agreement is computed locally (the SDK's agreement
API is Enterprise-only): Cohen's kappa of the first two annotators, on severity and on risk_to.

A graded record keeps the dataset record's clause types and obligated party, and takes the
adjudicated `risk_to` / `severity` / `reason` (or the annotators' shared one, adjudicator
`agreement`), `risk_graded: true`, both annotators' labels in `risk_annotations` and
`risk_adjudicator`; `risk_labeller` is `graded`. The graded labels are also written to
`data/risk_graded.jsonl`, which `contract-review data build` applies, so a rebuilt dataset keeps them.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from contract_review.records import (AGREED, SPLITS, RecordError, RiskAnnotation, find_split_file, iter_jsonl,
                                     read_records, write_jsonl)
from contract_review.taxonomy import TaxonomyError, load_taxonomy

from .agreement import FieldAgreement, agreement_report
from .graded_labels import GradedLabel, graded_record
from .graded_cli import DEFAULT_GRADED_PROJECT
from .journal import Journal
from .label_studio import LabelStudioClient, LabelStudioError
from .labeling_config import AnnotatedLabels, graded_config, risk_result
from .merge import MergeReport, merge_records
from .pull import fetch_into_journal, latest_versions

DISAGREEMENT_FIELD = "risk_disagreement"  # task data field the disagreements tab filters on
DISAGREEMENT_VIEW = "Risk disagreements"
RISK_FIELDS = ("risk_to", "severity")
USER_DOMAIN = "annotators.local"


# -- tasks -----------------------------------------------------------------------------------------
def _parties_text(parties: list[dict]) -> str:
    lines = []
    for p in parties:
        name = p.get("name") or "[not named in the contract]"
        blank = " [blank in the contract]" if p.get("blank") else ""
        also = f" (also: {', '.join(p['aliases'])})" if p.get("aliases") else ""
        lines.append(f"{p['role']}: {name}{blank}{also}")
    return "\n".join(lines)


def task_from_line(line: dict) -> dict:
    """A graded task: the clause, its context and the contract's party list; no prediction."""
    return {"data": {
        "clause_id": line["id"], "doc_id": line["doc_id"], "source": line["source"], "split": line["split"],
        "text": line["text"], "context": line.get("context") or "", "parties": _parties_text(line["parties"]),
        "party_names": line.get("party_names", {}), "party_aliases": line.get("party_aliases", {}),
        DISAGREEMENT_FIELD: "",
    }}


def sample_lines(sample_dir: Path) -> list[dict]:
    files = sorted((Path(sample_dir) / "batches").glob("batch-*.jsonl"))
    if not files:
        raise FileNotFoundError(f"{sample_dir}: no batches/batch-*.jsonl; draw them with `contract-review annotate sample`")
    return [line for f in files for _, line in iter_jsonl(f)]


@dataclass
class GradedPushReport:
    project_id: int = 0
    created: bool = False
    imported: int = 0
    already_there: int = 0


def ensure_graded_project(client: LabelStudioClient, title: str) -> tuple[dict, bool]:
    config = graded_config()
    project = client.find_project(title)
    if project is None:
        return client.create_project(title, config, "The graded set: label risk independently (data/guidelines.md "
                                                    "sections 3 and 5); do not look at other annotations"), True
    if project.get("label_config") != config:
        project = client.update_project(project["id"], label_config=config)
    return project, False


def clause_tasks(client: LabelStudioClient, project_id: int, fields: str = "all") -> dict[str, dict]:
    return {t["data"]["clause_id"]: t for page in client.iter_task_pages(project_id, fields=fields)
            for t in page if t.get("data", {}).get("clause_id")}


def push_graded(client: LabelStudioClient, sample_dir: Path, title: str = DEFAULT_GRADED_PROJECT) -> GradedPushReport:
    report = GradedPushReport()
    project, report.created = ensure_graded_project(client, title)
    report.project_id = project["id"]
    have = clause_tasks(client, project["id"], fields="task_only")
    lines = sample_lines(sample_dir)
    new = [task_from_line(x) for x in lines if x["id"] not in have]
    report.already_there = len(lines) - len(new)
    for i in range(0, len(new), 100):
        client.import_tasks(project["id"], new[i : i + 100])
        report.imported += len(new[i : i + 100])
    return report


# -- annotators' label files -------------------------------------------------------------------
@dataclass(frozen=True)
class LabelLine:
    clause_id: str
    risk_to: str
    severity: str
    reason: str
    clause_types: tuple[str, ...] = ()


def read_label_file(path: Path, annotator: str) -> list[LabelLine]:
    """An annotator's labels, one JSON line per clause: {"id", "risk_to", "severity", "reason", "clause_types"?}.
    Every problem is reported with its file and line, and nothing is imported from a file that has one."""
    tax = load_taxonomy()
    out, problems = [], []
    for lineno, obj in iter_jsonl(path):
        try:
            for key in ("id", "risk_to", "severity", "reason"):
                if not obj.get(key) and obj.get(key) != "":
                    raise ValueError(f"missing {key!r}")
            RiskAnnotation(annotator=annotator, risk_to=obj["risk_to"], severity=obj["severity"],
                           reason=str(obj["reason"]))
            types = tuple(obj.get("clause_types") or ())
            for t in types:
                tax.check("clause_type", t)
            out.append(LabelLine(obj["id"], obj["risk_to"], obj["severity"], str(obj["reason"]), types))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            problems.append(f"{path}:{lineno}: {where + ': ' if where else ''}{err['msg'].removeprefix('Value error, ')}")
        except (ValueError, TaxonomyError) as exc:
            problems.append(f"{path}:{lineno}: {exc}")
    if problems:
        raise RecordError("\n".join(problems[:20]) + (f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""))
    return out


@dataclass
class ImportReport:
    annotator: str
    user_id: int
    created: int = 0
    already_there: int = 0
    unknown: list[str] = field(default_factory=list)  # clause ids with no task in the project


def import_labels(client: LabelStudioClient, title: str, annotator: str, path: Path,
                  adjudication: bool = False) -> ImportReport:
    """File each label as an annotation completed by the annotator's Label Studio user (ground truth when
    adjudicating). A task the user already annotated is left alone, so an import can be repeated."""
    labels = read_label_file(path, annotator)
    project = client.find_project(title)
    if project is None:
        raise LabelStudioError(f"no project {title!r} at {client.settings.url}; create it with "
                               "`contract-review annotate graded push`")
    user_id = client.find_or_create_user(annotator, USER_DOMAIN)
    tasks = clause_tasks(client, project["id"])
    report = ImportReport(annotator, user_id)
    for lab in labels:
        task = tasks.get(lab.clause_id)
        if task is None:
            report.unknown.append(lab.clause_id)
            continue
        mine = [a for a in task.get("annotations", []) if _author(a) == user_id and not a.get("was_cancelled")]
        if mine:
            report.already_there += 1
            continue
        client.create_annotation(task["id"], risk_result(lab.risk_to, lab.severity, lab.reason, lab.clause_types),
                                 completed_by=user_id, ground_truth=adjudication)
        report.created += 1
    return report


def _author(annotation: dict) -> int | None:
    who = annotation.get("completed_by")
    return who.get("id") if isinstance(who, dict) else who


# -- disagreements ---------------------------------------------------------------------------------
def _risk_of(labels: dict | None) -> tuple | None:
    if not labels:
        return None
    return (labels.get("risk_to"), labels.get("severity") or labels.get("risk"))


def find_disagreements(client: LabelStudioClient, title: str, mark: bool = True) -> list[dict]:
    """Tasks whose annotators differ on risk_to or severity and have no ground truth yet. With `mark`, each gets
    `risk_disagreement` set in its data (cleared once settled) and the project a "Risk disagreements" tab."""
    from .labeling_config import labels_from_result

    project = client.find_project(title)
    if project is None:
        raise LabelStudioError(f"no project {title!r} at {client.settings.url}")
    users = client.users()
    out = []
    for cid, task in sorted(clause_tasks(client, project["id"]).items()):
        anns = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
        settled = any(a.get("ground_truth") for a in anns)
        labels = {users.get(_author(a), f"user-{_author(a)}"): labels_from_result(a.get("result") or []).as_dict()
                  for a in anns if not a.get("ground_truth")}
        fields = [f for i, f in enumerate(RISK_FIELDS) if len({_risk_of(v)[i] for v in labels.values()}) > 1] \
            if len(labels) >= 2 else []
        flag = ", ".join(fields) if fields and not settled else ""
        if mark and task["data"].get(DISAGREEMENT_FIELD, "") != flag:
            client.update_task_data(task["id"], {**task["data"], DISAGREEMENT_FIELD: flag})
        if flag:
            out.append({"clause_id": cid, "task_id": task["id"], "fields": fields,
                        "task_url": f"{client.settings.url}/projects/{project['id']}/data?task={task['id']}",
                        "text": task["data"].get("text", "")[:300], "annotations": labels})
    if mark:
        client.ensure_view(project["id"], DISAGREEMENT_VIEW, f"data.{DISAGREEMENT_FIELD}")
    return out


# -- graded records ------------------------------------------------------------------------------
@dataclass
class GradedResolution:
    graded: list[GradedLabel] = field(default_factory=list)
    disagreements: list[dict] = field(default_factory=list)
    single: int = 0  # clauses only one annotator labelled so far
    overlapped: list[list[dict]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def annotator_name(user: str) -> str:
    """An imported annotator reads as the name they were imported under (ai-annotator-1), a UI user as their e-mail."""
    return user.removesuffix(f"@{USER_DOMAIN}")


def _annotation(e: dict) -> RiskAnnotation:
    lab = AnnotatedLabels.from_dict(e["labels"] or {})
    return RiskAnnotation(annotator=annotator_name(e["annotator"]), risk_to=lab.risk_to, severity=lab.severity,
                          reason=lab.reason or "",
                          annotated_at=e.get("updated_at"), clause_types=list(lab.clause_types or []) or None)


def resolve_graded(entries: list[dict]) -> GradedResolution:
    """Per clause: each annotator's latest annotation, the ground truth if any; agreement or adjudication."""
    by_clause: dict[str, dict[str, dict]] = defaultdict(dict)
    truth: dict[str, dict] = {}
    res = GradedResolution()
    for e in latest_versions(entries):
        cid = e["clause"].get("clause_id")
        if e["was_cancelled"]:
            continue
        lab = AnnotatedLabels.from_dict(e.get("labels") or {})
        if e.get("error") or not cid or lab.risk_to is None or lab.severity is None:
            res.problems.append(f"task {e['task_id']} annotation {e['annotation_id']} by {e['annotator']}: "
                                f"{e.get('error') or 'no bearer or no severity chosen'}; skipped")
            continue
        if e["ground_truth"]:
            truth[cid] = e
        else:
            by_clause[cid][e["annotator"]] = e
    for cid in sorted(set(by_clause) | set(truth)):
        group = [by_clause[cid][a] for a in sorted(by_clause.get(cid, {}))]
        if len(group) < 2:
            res.single += 1
            continue
        try:
            anns = [_annotation(e) for e in group]
        except ValueError as exc:
            res.problems.append(f"clause {cid}: {exc}")
            continue
        res.overlapped.append([e["labels"] for e in group])
        text = group[0]["clause"].get("text", "")
        if cid in truth:
            t = _annotation(truth[cid])
            res.graded.append(GradedLabel(cid, text, anns, t.annotator, t.risk_to, t.severity, t.reason))
        elif len({(a.risk_to, a.severity) for a in anns}) == 1:
            reason = next((a.reason for a in anns if a.reason), "")
            res.graded.append(GradedLabel(cid, text, anns, AGREED, anns[0].risk_to, anns[0].severity, reason))
        else:
            res.disagreements.append({"clause_id": cid, "text": text[:300],
                                      "annotations": {a.annotator: {"risk_to": a.risk_to, "severity": a.severity,
                                                                    "reason": a.reason} for a in anns}})
    return res


@dataclass
class GradedPullReport:
    tasks_seen: int = 0
    new_entries: int = 0
    resolution: GradedResolution = field(default_factory=GradedResolution)
    agreement: list[FieldAgreement] = field(default_factory=list)
    merge: MergeReport | None = None
    not_in_dataset: list[str] = field(default_factory=list)


def merge_graded(journal: Journal, dataset_dir: Path, graded_file: Path,
                 disagreements_file: Path | None = None) -> GradedPullReport:
    report = GradedPullReport()
    report.resolution = res = resolve_graded(journal.read())
    report.agreement = [a for a in agreement_report(res.overlapped) if a.field in (*RISK_FIELDS, "risk_clause",
                                                                                    "clause_types")]
    dataset = {r.id: r for s in SPLITS for r in read_records(find_split_file(dataset_dir, s), allow_empty=True)}
    records = []
    for label in res.graded:
        rec = dataset.get(label.clause_id)
        if rec is None:
            report.not_in_dataset.append(label.clause_id)
            continue
        records.append(graded_record(rec, label))
    old = {g["id"]: g for _, g in iter_jsonl(graded_file)} if Path(graded_file).exists() else {}
    old.update({g.clause_id: g.as_dict() for g in res.graded if g.clause_id in dataset})
    write_jsonl(graded_file, [old[k] for k in sorted(old)])
    report.merge = merge_records(dataset_dir, records)
    if disagreements_file is not None:
        write_jsonl(disagreements_file, res.disagreements)
    return report


def pull_graded(client: LabelStudioClient, title: str, journal: Journal, dataset_dir: Path, graded_file: Path,
                disagreements_file: Path | None = None, progress: bool = True) -> GradedPullReport:
    project = client.find_project(title)
    if project is None:
        raise LabelStudioError(f"no project {title!r} at {client.settings.url}; create it with "
                               "`contract-review annotate graded push`")
    tasks, new = fetch_into_journal(client, project["id"], journal, progress)
    report = merge_graded(journal, dataset_dir, graded_file, disagreements_file)
    report.tasks_seen, report.new_entries = tasks, new
    return report


def summary(report: GradedPullReport) -> list[str]:
    res = report.resolution
    by = Counter(g.adjudicator == AGREED for g in res.graded)
    return [f"graded clauses: {len(res.graded)} ({by[True]} agreed, {by[False]} adjudicated); "
            f"{len(res.disagreements)} disagreements waiting for adjudication; {res.single} with one annotator so far",
            *(f"skipped: {p}" for p in res.problems),
            *(f"not in the dataset (rebuild it?): {cid}" for cid in report.not_in_dataset)]


def agreement_json(report: GradedPullReport) -> str:
    return json.dumps([a.__dict__ for a in report.agreement], indent=2)
