"""Typed loader for `data/taxonomy.yaml`, the one home of the label taxonomy.

Every package gets labels from `load_taxonomy()`; nothing else hard-codes a label name.
The YAML is validated when read: an unknown risk level, a duplicate id or a clause type
that names a risk category not declared in the file fails with the offending entry named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from .paths import TAXONOMY_FILE


class TaxonomyError(ValueError):
    """The taxonomy file, or a label checked against it, is invalid."""


@dataclass(frozen=True)
class ClauseType:
    id: str
    name: str
    description: str
    risk: str
    risk_category: str
    reason: str
    cuad: str | None = None
    claudette: str | None = None
    merged: str | None = None


@dataclass(frozen=True)
class Taxonomy:
    version: int
    clause_types: tuple[ClauseType, ...]
    parties: tuple[str, ...]
    party_zh: dict[str, str]
    risk_levels: tuple[str, ...]
    risk_positive: frozenset[str]
    risk_categories: tuple[str, ...]
    _by_id: dict[str, ClauseType] = field(repr=False, compare=False, default_factory=dict)

    # -- lookups -----------------------------------------------------------------
    @property
    def clause_type_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.clause_types)

    def clause_type(self, type_id: str) -> ClauseType:
        try:
            return self._by_id[type_id]
        except KeyError:
            raise TaxonomyError(
                f"unknown clause type {type_id!r}; valid types are listed in {TAXONOMY_FILE.name} "
                f"(e.g. {', '.join(self.clause_type_ids[:4])}, ..., other)"
            ) from None

    def by_cuad(self) -> dict[str, ClauseType]:
        return {c.cuad: c for c in self.clause_types if c.cuad}

    def by_claudette(self) -> dict[str, ClauseType]:
        return {c.claudette: c for c in self.clause_types if c.claudette}

    @property
    def claudette_codes(self) -> tuple[str, ...]:
        """The 8 CLAUDETTE / LexGLUE unfair-term categories, in LexGLUE's label order."""
        order = ("LTD", "TER", "CH", "CR", "USE", "J", "LAW", "A")
        present = {c.claudette for c in self.clause_types if c.claudette}
        return tuple(code for code in order if code in present)

    def order_types(self, types) -> list[str]:
        """Clause types as every record lists them: highest default risk first, then taxonomy
        order; `other` only when nothing else applies (and when nothing is given)."""
        ordered = sorted(set(types) or {"other"},
                         key=lambda t: (-self.risk_rank(self.clause_type(t).risk), self.clause_type_ids.index(t)))
        if len(ordered) > 1 and "other" in ordered:
            ordered.remove("other")
        return ordered

    def default_reason(self, type_id: str) -> str:
        """The one-sentence reason a clause of this type gets unless someone writes a better one."""
        ct = self.clause_type(type_id)
        return ct.reason if ct.id == "other" else f"{ct.name}: {ct.reason}"

    def risk_rank(self, level: str) -> int:
        self.check("risk", level)
        return self.risk_levels.index(level)

    def is_risk_clause(self, level: str) -> bool:
        return level in self.risk_positive

    def check(self, field_name: str, value: str) -> str:
        """Return `value` if it is a valid label of `field_name`, else raise naming the fix."""
        allowed = {
            "clause_type": self.clause_type_ids,
            "party": self.parties,
            "risk": self.risk_levels,
            "risk_category": self.risk_categories,
        }.get(field_name)
        if allowed is None:
            raise TaxonomyError(f"no label field called {field_name!r}")
        if value not in allowed:
            raise TaxonomyError(
                f"{field_name} {value!r} is not in the taxonomy; use one of: {', '.join(allowed)}"
            )
        return value


def _require(entry: dict, key: str, where: str):
    if key not in entry:
        raise TaxonomyError(f"{where}: missing key {key!r}")
    return entry[key]


def parse_taxonomy(raw: dict, source: str = "taxonomy") -> Taxonomy:
    if not isinstance(raw, dict):
        raise TaxonomyError(f"{source}: expected a mapping at the top level")
    risk_levels = tuple(_require(r, "id", f"{source}: risk_levels") for r in _require(raw, "risk_levels", source))
    risk_categories = tuple(
        _require(r, "id", f"{source}: risk_categories") for r in _require(raw, "risk_categories", source)
    )
    parties = tuple(_require(p, "id", f"{source}: parties") for p in _require(raw, "parties", source))
    party_zh = {p["id"]: p.get("zh", "") for p in raw["parties"]}
    positive = frozenset(_require(raw, "risk_positive", source))
    if not positive <= set(risk_levels):
        raise TaxonomyError(f"{source}: risk_positive {sorted(positive)} must be risk levels {risk_levels}")

    types: list[ClauseType] = []
    seen: set[str] = set()
    known = set(ClauseType.__dataclass_fields__)
    for i, entry in enumerate(_require(raw, "clause_types", source)):
        where = f"{source}: clause_types[{i}] ({entry.get('id', '?')})"
        unknown = set(entry) - known
        if unknown:
            raise TaxonomyError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(known)}")
        ct = ClauseType(**{k: entry.get(k) for k in known if k in entry})
        for key in ("id", "name", "description", "risk", "risk_category", "reason"):
            if not getattr(ct, key):
                raise TaxonomyError(f"{where}: missing {key!r}")
        if ct.id in seen:
            raise TaxonomyError(f"{where}: duplicate id")
        if ct.risk not in risk_levels:
            raise TaxonomyError(f"{where}: risk {ct.risk!r} not in {risk_levels}")
        if ct.risk_category not in risk_categories:
            raise TaxonomyError(f"{where}: risk_category {ct.risk_category!r} not in {risk_categories}")
        if ct.cuad and ct.claudette and not ct.merged:
            raise TaxonomyError(f"{where}: merges CUAD and CLAUDETTE categories; say why under 'merged'")
        seen.add(ct.id)
        types.append(ct)
    if "other" not in seen:
        raise TaxonomyError(f"{source}: the clause type 'other' is required")
    return Taxonomy(
        version=int(raw.get("version", 1)),
        clause_types=tuple(types),
        parties=parties,
        party_zh=party_zh,
        risk_levels=risk_levels,
        risk_positive=positive,
        risk_categories=risk_categories,
        _by_id={c.id: c for c in types},
    )


@lru_cache(maxsize=4)
def load_taxonomy(path: str | Path = TAXONOMY_FILE) -> Taxonomy:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TaxonomyError(f"taxonomy file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise TaxonomyError(f"{path}: not valid YAML: {exc}") from None
    return parse_taxonomy(raw, source=str(path.name))
