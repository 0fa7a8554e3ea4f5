"""The dataset record format, and reading/writing JSONL files of records safely.

A record is one clause in the instruction format (`instruction`, `input`, `output`,
`system`) plus metadata: where it comes from (`source`, `doc_id`, character offsets
`start`/`end` into the document text), its `split`, and its labels as separate fields
(`clause_types`, `party`, `risk_to`, `severity`, `risk`, `risk_category`, `reason`) so tools
need not parse `output`. `output` is always the JSON of those labels (see `prompt.Answer`).

Labels are only as good as who made them, so each kind of label names its maker:
`type_labeller` (clause types), `party_labeller` (obligated party), `risk_labeller` (bearer and
severity); `verified`/`labeller` mark a checked obligated party, and a graded record
(`risk_graded`) keeps every annotator's risk label beside the adjudicated one.

A record is refused when its labels contradict each other: a labelled party or bearer the
record's party list does not name, a severity without a bearer or a bearer without a
severity, `risk` different from `severity`.

Writes are atomic (temporary file, then rename); reads name the file and line of any
problem.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .prompt import Answer, check_risk
from .taxonomy import TaxonomyError, load_taxonomy

Split = Literal["train", "validation", "test"]
SPLITS: tuple[str, ...] = ("train", "validation", "test")


class RecordError(ValueError):
    """A record file or a record in it is invalid."""


def _in_taxonomy(field_name: str, value: str) -> str:
    try:
        return load_taxonomy().check(field_name, value)
    except TaxonomyError as exc:
        raise ValueError(str(exc)) from None


class RiskAnnotation(BaseModel):
    """One annotator's risk label of a graded clause."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    annotator: str = Field(min_length=1)
    risk_to: str
    severity: str
    reason: str = ""
    annotated_at: str | None = None
    clause_types: list[str] | None = None  # the types the annotator judged the clause to be (measures the rules)

    @field_validator("risk_to", "severity")
    @classmethod
    def _known(cls, value: str, info) -> str:
        return _in_taxonomy(info.field_name, value)

    @field_validator("clause_types")
    @classmethod
    def _known_types(cls, value: list[str] | None) -> list[str] | None:
        for t in value or []:
            _in_taxonomy("clause_type", t)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "RiskAnnotation":
        problem = check_risk(self.risk_to, self.severity)
        if problem:
            raise ValueError(f"annotation by {self.annotator}: {problem}")
        return self


# the adjudicator value of a graded record whose annotators agreed, so nobody had to decide
AGREED = "agreement"


class ClauseRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    instruction: str
    input: str
    output: str
    system: str
    # provenance
    source: Literal["cuad", "claudette", "annotation", "augmented", "user"]
    doc_id: str
    split: Split
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str = Field(min_length=1)
    # labels
    clause_types: list[str] = Field(min_length=1)
    party: str
    # the contract's parties by role, from its one canonical list (annotation/parties.py)
    party_names: dict[str, str] = Field(default_factory=dict)
    party_aliases: dict[str, list[str]] = Field(default_factory=dict)
    risk_to: str  # who bears the risk (a role, like `party`)
    severity: str  # how severe it is for that party
    risk: str  # = severity, kept while readers of `risk` switch over
    risk_category: str
    reason: str
    fairness: int | None = None  # CLAUDETTE's expert fairness level (1-3), when known
    # who labelled what
    type_labeller: str = Field(min_length=1)  # "cuad", "claudette", "rules", "annotator", ...
    party_labeller: str = Field(min_length=1)  # "rules", the checker's id (verified), "annotator"
    risk_labeller: str = Field(min_length=1)  # "rules", "claudette+rules", "graded", "annotator"
    verified: bool = False
    labeller: str | None = None  # who checked the obligated party against the guidelines
    # the graded set: every annotator's risk label, and who settled it
    risk_graded: bool = False
    risk_annotations: list[RiskAnnotation] | None = None
    risk_adjudicator: str | None = None  # who chose the final label, or "agreement"
    annotator: str | None = None
    annotated_at: str | None = None
    model_version: str | None = None
    augmentation: str | None = None
    source_id: str | None = None  # the record an augmented record came from

    @field_validator("clause_types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        for t in value:
            _in_taxonomy("clause_type", t)
        return value

    @field_validator("party", "risk_to", "severity", "risk", "risk_category")
    @classmethod
    def _known_label(cls, value: str, info) -> str:
        return _in_taxonomy(info.field_name, value)

    @model_validator(mode="after")
    def _check(self) -> "ClauseRecord":
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        if self.verified and not self.labeller:
            raise ValueError("a verified record must name its labeller")
        if self.risk != self.severity:
            raise ValueError(f"risk {self.risk!r} must equal severity {self.severity!r} (one value, two names)")
        problem = check_risk(self.risk_to, self.severity)
        if problem:
            raise ValueError(problem)
        for name in ("party", "risk_to"):
            missing = self.unnamed_roles(getattr(self, name))
            if missing:
                raise ValueError(f"{name} {getattr(self, name)!r}, but the record's party list names no "
                                 f"{' or '.join(missing)} (party_names {self.party_names}); fix the label or the list")
        self._check_graded()
        if json.loads(self.output) != json.loads(self.answer().to_json()):
            raise ValueError("output does not match the label fields")
        return self

    def unnamed_roles(self, label: str) -> list[str]:
        """The roles a party label needs that the party list leaves unnamed."""
        roles = {"first_party": ["first_party"], "second_party": ["second_party"],
                 "both": ["first_party", "second_party"]}.get(label, [])
        return [r for r in roles if not (self.party_names.get(r) or "").strip()]

    def _check_graded(self) -> None:
        if not self.risk_graded:
            if self.risk_annotations or self.risk_adjudicator:
                raise ValueError("risk_annotations / risk_adjudicator belong to a graded record (risk_graded true)")
            return
        anns = self.risk_annotations or []
        if len({a.annotator for a in anns}) < 2:
            raise ValueError("a graded record needs risk labels from two different annotators (risk_annotations)")
        if not self.risk_adjudicator:
            raise ValueError(f"a graded record names who settled its label (risk_adjudicator, or {AGREED!r})")
        if self.risk_adjudicator == AGREED and any((a.risk_to, a.severity) != (self.risk_to, self.severity)
                                                   for a in anns):
            raise ValueError(f"risk_adjudicator {AGREED!r} but the annotators' labels differ from the record's")

    def answer(self) -> Answer:
        return Answer(tuple(self.clause_types), self.party, self.risk, self.risk_category, self.reason,
                      risk_to=self.risk_to, severity=self.severity)

    @property
    def is_risk(self) -> bool:
        return load_taxonomy().is_risk_clause(self.risk)


# One record is one clause: the largest in the shipped dataset is under 7 KB. A line past this is a
# whole document or a broken file, and reading it whole would cost its size in memory and tokenizer time.
MAX_RECORD_BYTES = 1 << 20
_SKIP_CHUNK = 1 << 20


def _open_binary(path: Path):
    try:
        return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    except IsADirectoryError:
        raise RecordError(f"{path}: is a folder; give a .jsonl or .jsonl.gz file") from None
    except OSError as exc:
        raise RecordError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _skip_rest_of_line(fh, first: bytes) -> int:
    """Reads past the end of an oversized line in chunks; its size in bytes (without the newline)."""
    size, chunk = len(first), first
    while chunk and not chunk.endswith(b"\n"):
        chunk = fh.readline(_SKIP_CHUNK)
        size += len(chunk)
    return size - (1 if chunk.endswith(b"\n") else 0)


def _parse_line(path: Path, lineno: int, raw: bytes) -> dict | RecordError | None:
    """The object on one line, the problem with it, or None for a blank line."""
    try:
        text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")  # a byte-order mark may open the file
    except UnicodeDecodeError as exc:
        column = len(raw[: exc.start].decode("utf-8", errors="replace")) + 1
        return RecordError(f"{path}:{lineno}:{column}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the "
                           "file as UTF-8, e.g. `iconv -f latin1 -t utf-8 IN > OUT`")
    if not text.strip():
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return RecordError(f"{path}:{lineno}: not valid JSON ({exc.msg}); fix or remove the line")
    if not isinstance(obj, dict):
        return RecordError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _lines(path: Path) -> Iterator[tuple[int, dict | RecordError]]:
    """(line number, object or the problem with that line) for each non-blank line of a JSONL(.gz) file.

    Lines are read as bytes and decoded one at a time, so a decoding error names its line and column,
    and no line longer than `MAX_RECORD_BYTES` is ever held whole in memory."""
    if not path.exists():
        raise RecordError(f"{path}: file not found")
    lineno = 0
    with _open_binary(path) as fh:
        try:
            while raw := fh.readline(MAX_RECORD_BYTES + 1):
                lineno += 1
                if len(raw) > MAX_RECORD_BYTES and not raw.endswith(b"\n"):  # more than the limit before its end
                    size = _skip_rest_of_line(fh, raw)
                    yield lineno, RecordError(
                        f"{path}:{lineno}: the line is {size:,} bytes, over the limit of {MAX_RECORD_BYTES:,} "
                        "bytes for one record (one clause; the largest shipped record is under 7 KB); split "
                        "the text into clauses (`contract-review data build` segments whole documents)")
                    continue
                parsed = _parse_line(path, lineno, raw)
                if parsed is not None:
                    yield lineno, parsed
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise RecordError(f"{path}: the gzip stream is damaged after line {lineno} ({exc}); "
                              "rebuild or re-download the file") from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) from a JSONL(.gz) file; blank lines are skipped. The first line that is
    not UTF-8, not JSON, not an object or over `MAX_RECORD_BYTES` raises `RecordError` naming file and line."""
    for lineno, obj in _lines(Path(path)):
        if isinstance(obj, RecordError):
            raise obj
        yield lineno, obj


def _problem(path, lineno: int, exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "record"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{path}:{lineno}: {where}: {msg}"


def read_records(path: str | Path, allow_empty: bool = False) -> list[ClauseRecord]:
    records = []
    for lineno, obj in iter_jsonl(path):
        try:
            records.append(ClauseRecord.model_validate(obj))
        except ValidationError as exc:
            raise RecordError(_problem(path, lineno, exc)) from None
    if not records and not allow_empty:
        raise RecordError(f"{path}: no records in file (is it empty?)")
    return records


def check_records(path: str | Path) -> tuple[list[ClauseRecord], list[str]]:
    """Every valid record of a file and one message (file:line: problem) per invalid line, whether the
    line is not UTF-8, not JSON, too long or an invalid record, so a check reports all that is wrong at
    once. A missing, unreadable or damaged (gzip) file still raises."""
    records, problems = [], []
    for lineno, obj in _lines(Path(path)):
        if isinstance(obj, RecordError):
            problems.append(str(obj))
            continue
        try:
            records.append(ClauseRecord.model_validate(obj))
        except ValidationError as exc:
            problems.append(_problem(path, lineno, exc))
    if not records and not problems:
        raise RecordError(f"{path}: no records in file (is it empty?)")
    return records, problems


def atomic_write(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600 files; datasets are meant to be shared
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dumps_jsonl(objs: Iterable[dict]) -> bytes:
    return "".join(json.dumps(o, ensure_ascii=False, sort_keys=True) + "\n" for o in objs).encode("utf-8")


def write_jsonl(path: str | Path, objs: Iterable[dict]) -> None:
    """Write JSONL atomically; `.gz` paths are gzip-compressed with a fixed mtime so
    that the same content always gives the same bytes."""
    data = dumps_jsonl(objs)
    path = Path(path)
    if path.suffix == ".gz":
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
            gz.write(data)
        data = buf.getvalue()
    atomic_write(path, data)


def write_records(path: str | Path, records: Iterable[ClauseRecord]) -> None:
    write_jsonl(path, (r.model_dump(exclude_none=True) for r in records))


def find_split_file(directory: str | Path, split: str) -> Path:
    directory = Path(directory)
    for name in (f"{split}.jsonl", f"{split}.jsonl.gz"):
        if (directory / name).exists():
            return directory / name
    raise RecordError(f"{directory}: no {split}.jsonl or {split}.jsonl.gz; build it with `contract-review data build`")
