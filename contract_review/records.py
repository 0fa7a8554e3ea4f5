"""The dataset record format, and reading/writing JSONL files of records safely.

A record is one clause in the instruction format (`instruction`, `input`, `output`,
`system`) plus metadata: where it comes from (`source`, `doc_id`, character offsets
`start`/`end` into the document text), its `split`, and its labels as separate fields
(`clause_types`, `party`, `risk`, `risk_category`, `reason`) so tools need not parse
`output`. `output` is always the JSON of those labels (see `prompt.Answer`).

Writes are atomic (temporary file, then rename); reads name the file and line of any
problem.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .prompt import Answer
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
    party_names: dict[str, str] = Field(default_factory=dict)
    risk: str
    risk_category: str
    reason: str
    fairness: int | None = None  # CLAUDETTE's expert fairness level (1-3), when known
    # who labelled what
    party_labeller: str = "rules"
    verified: bool = False
    labeller: str | None = None  # who checked the record against the guidelines
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

    @field_validator("party", "risk", "risk_category")
    @classmethod
    def _known_label(cls, value: str, info) -> str:
        return _in_taxonomy(info.field_name, value)

    @model_validator(mode="after")
    def _check(self) -> "ClauseRecord":
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        if self.verified and not self.labeller:
            raise ValueError("a verified record must name its labeller")
        if json.loads(self.output) != json.loads(self.answer().to_json()):
            raise ValueError("output does not match the label fields")
        return self

    def answer(self) -> Answer:
        return Answer(tuple(self.clause_types), self.party, self.risk, self.risk_category, self.reason)

    @property
    def is_risk(self) -> bool:
        return load_taxonomy().is_risk_clause(self.risk)


def _open_text(path: Path, mode: str):
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, mode + "b"), encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) from a JSONL(.gz) file; blank lines are skipped."""
    path = Path(path)
    if not path.exists():
        raise RecordError(f"{path}: file not found")
    with _open_text(path, "r") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RecordError(f"{path}:{lineno}: not valid JSON ({exc.msg}); fix or remove the line") from None
            if not isinstance(obj, dict):
                raise RecordError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def read_records(path: str | Path, allow_empty: bool = False) -> list[ClauseRecord]:
    records = []
    for lineno, obj in iter_jsonl(path):
        try:
            records.append(ClauseRecord.model_validate(obj))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "record"
            msg = err["msg"].removeprefix("Value error, ")
            raise RecordError(f"{path}:{lineno}: {where}: {msg}") from None
    if not records and not allow_empty:
        raise RecordError(f"{path}: no records in file (is it empty?)")
    return records


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
