"""Typed loader for `data/taxonomy.yaml`, the one home of the label taxonomy.

Every package gets labels from `load_taxonomy()`; nothing else hard-codes a label name.
The YAML is validated when read: an unknown severity level or bearer rule, a duplicate id or
a clause type that names a risk category not declared in the file fails with the offending
entry named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache
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
    severity: str  # the starting guess of a clause of this type (data/guidelines.md moves it)
    risk_to: str  # a bearer rule (Taxonomy.bearer_rules): how the bearer is found in a clause
    risk_category: str
    reason: str
    cuad: str | None = None
    claudette: str | None = None
    merged: str | None = None

    @property
    def risk(self) -> str:
        """The default severity under its old name (`risk` equals severity until readers switch)."""
        return self.severity


@dataclass(frozen=True)
class Taxonomy:
    version: int
    clause_types: tuple[ClauseType, ...]
    parties: tuple[str, ...]
    party_zh: dict[str, str]
    severity_levels: tuple[str, ...]
    risk_positive: frozenset[str]
    risk_categories: tuple[str, ...]
    bearer_rules: tuple[str, ...] = ("obliged", "counterparty", "both", "none")
    terms_of_service_bearer: str = "second_party"
    _by_id: dict[str, ClauseType] = field(repr=False, compare=False, default_factory=dict)

    # -- lookups -----------------------------------------------------------------
    @property
    def risk_levels(self) -> tuple[str, ...]:
        """The severity scale under its old name (`risk` equals severity until readers switch)."""
        return self.severity_levels

    @property
    def risk_bearers(self) -> tuple[str, ...]:
        """Who can bear a risk: the same roles as the obligated party."""
        return self.parties

    @cached_property
    def clause_type_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.clause_types)

    @cached_property
    def _type_position(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.clause_type_ids)}

    @cached_property
    def _severity_rank(self) -> dict[str, int]:
        return {level: i for i, level in enumerate(self.severity_levels)}

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
        """Clause types as every record lists them: highest default severity first, then taxonomy
        order; `other` only when nothing else applies (and when nothing is given)."""
        ordered = sorted(set(types) or {"other"},
                         key=lambda t: (-self.risk_rank(self.clause_type(t).severity), self._type_position[t]))
        if len(ordered) > 1 and "other" in ordered:
            ordered.remove("other")
        return ordered

    def default_reason(self, type_id: str) -> str:
        """The one-sentence reason a clause of this type gets unless someone writes a better one."""
        ct = self.clause_type(type_id)
        return ct.reason if ct.id == "other" else f"{ct.name}: {ct.reason}"

    def risk_rank(self, level: str) -> int:
        """A severity level's place on the scale (none = 0)."""
        rank = self._severity_rank.get(level)
        return rank if rank is not None else self.severity_levels.index(self.check("severity", level))

    def is_risk_clause(self, level: str) -> bool:
        return level in self.risk_positive

    def check(self, field_name: str, value: str) -> str:
        """Return `value` if it is a valid label of `field_name`, else raise naming the fix."""
        allowed = {
            "clause_type": self.clause_type_ids,
            "party": self.parties,
            "risk_to": self.parties,
            "severity": self.severity_levels,
            "risk": self.severity_levels,
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
    levels = tuple(_require(r, "id", f"{source}: severity_levels") for r in _require(raw, "severity_levels", source))
    rules = tuple(_require(r, "id", f"{source}: bearer_rules") for r in _require(raw, "bearer_rules", source))
    risk_categories = tuple(
        _require(r, "id", f"{source}: risk_categories") for r in _require(raw, "risk_categories", source)
    )
    parties = tuple(_require(p, "id", f"{source}: parties") for p in _require(raw, "parties", source))
    party_zh = {p["id"]: p.get("zh", "") for p in raw["parties"]}
    positive = frozenset(_require(raw, "risk_positive", source))
    if not positive <= set(levels):
        raise TaxonomyError(f"{source}: risk_positive {sorted(positive)} must be severity levels {levels}")
    if levels[0] != "none":
        raise TaxonomyError(f"{source}: severity_levels must start with 'none' (nobody bears a risk), got {levels[0]!r}")
    tos_bearer = _require(raw, "terms_of_service_bearer", source)
    if tos_bearer not in parties:
        raise TaxonomyError(f"{source}: terms_of_service_bearer {tos_bearer!r} not in {parties}")

    types: list[ClauseType] = []
    seen: set[str] = set()
    known = set(ClauseType.__dataclass_fields__)
    for i, entry in enumerate(_require(raw, "clause_types", source)):
        where = f"{source}: clause_types[{i}] ({entry.get('id', '?')})"
        unknown = set(entry) - known
        if unknown:
            raise TaxonomyError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(known)}")
        ct = ClauseType(**{k: entry.get(k) for k in known if k in entry})
        for key in ("id", "name", "description", "severity", "risk_to", "risk_category", "reason"):
            if not getattr(ct, key):
                raise TaxonomyError(f"{where}: missing {key!r}")
        if ct.id in seen:
            raise TaxonomyError(f"{where}: duplicate id")
        if ct.severity not in levels:
            raise TaxonomyError(f"{where}: severity {ct.severity!r} not in {levels}")
        if ct.risk_to not in rules:
            raise TaxonomyError(f"{where}: risk_to {ct.risk_to!r} is not a bearer rule {rules}")
        if (ct.severity == "none") != (ct.risk_to == "none"):
            raise TaxonomyError(f"{where}: severity none goes with risk_to none and only with it "
                                f"(got severity {ct.severity!r}, risk_to {ct.risk_to!r})")
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
        severity_levels=levels,
        risk_positive=positive,
        risk_categories=risk_categories,
        bearer_rules=rules,
        terms_of_service_bearer=tos_bearer,
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
