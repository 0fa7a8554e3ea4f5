"""Label-preserving augmentation of the train split.

    synonym         replace a few words from a curated legal synonym list (data/synonyms_legal.yaml,
                    shipped: works offline) outside protected terms;
    backtranslate   translate to a pivot language and back through a pluggable `Translator`;
                    with no translation model available it raises `TranslatorUnavailable` instead
                    of pretending;
    party_swap      exchange the two parties' names and aliases in the clause and swap the
                    obligated-party and risk-bearer labels to match (first <-> second; both/none
                    unchanged); the reason names the other party.

Protected terms are never changed: modal verbs (shall, may, must, will ...), negations (not,
no, neither, unless, without, except ...), numbers, dates and time units, capitalised words
(defined terms such as "Confidential Information", names), quoted terms, and the parties'
names and aliases. `check_augmentation` compares the protected terms and labels of every
augmented record with its source and refuses the record when anything it must keep moved;
party_swap must also convince the rule labeller (annotation.obligation) that the obligated
party really changed sides. Only `split: "train"` records are augmented; an augmented record
keeps `source_id` (its source) and its source's split.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol, runtime_checkable

import yaml

from contract_review.paths import DATA_DIR
from contract_review.prompt import Answer, build_input
from contract_review.records import ClauseRecord, read_records, write_records

from .obligation import label_obligation
from .parties import Parties, short_forms

SYNONYMS_FILE = DATA_DIR / "synonyms_legal.yaml"
METHODS = ("synonym", "backtranslate", "party_swap")
_FLIP = {"first_party": "second_party", "second_party": "first_party"}


class AugmentError(ValueError):
    """Augmentation cannot run as asked (unknown method, no translator, bad input)."""


class TranslatorUnavailable(AugmentError):
    pass


class AugmentationRefused(ValueError):
    """An augmented record changed something it must keep; it is not written."""


# -- protected terms ----------------------------------------------------------------------------
_MODAL = r"shall|may|must|will|would|should|can|cannot|could|might|ought"
_NEGATION = (r"not|no|never|neither|nor|none|nothing|nobody|without|unless|except|only|solely|"
             r"\w+n't|non-\w+")
_NUMBER_WORDS = (r"zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
                 r"fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|"
                 r"eighty|ninety|hundred|thousand|million|billion|half|quarter|percent|per\s+cent|first|"
                 r"second|third|fourth|fifth|annual|annually|monthly|quarterly|daily|weekly")
_DATE_WORDS = (r"january|february|march|april|june|july|august|september|october|november|december|"
               r"days?|weeks?|months?|years?|business|calendar|hours?|minutes?|date|dates")
_PROTECTED = re.compile(
    rf"""(?ix)
      "[^"]{{1,80}}" | “[^”]{{1,80}}”                      # quoted (defined) terms
    | [$€£¥]\s?\d(?:[\d,.]*\d)?                            # money
    | \d(?:[\d,.:/-]*\d)?%?                                 # numbers, dates, times, percentages
    | \b(?:{_MODAL})\b
    | \b(?:{_NEGATION})\b
    | \b(?:{_NUMBER_WORDS})\b
    | \b(?:{_DATE_WORDS})\b
    """
)
_CAPITALISED = re.compile(r"\b[A-Z][\w'&.-]*")


def _term_pattern(terms: Sequence[str]) -> re.Pattern | None:
    terms = sorted({t for t in terms if t and t.strip()}, key=len, reverse=True)
    if not terms:
        return None
    return re.compile("|".join(rf"(?<![\w-]){re.escape(t)}(?![\w-])" for t in terms))


def protected_spans(text: str, party_terms: Sequence[str] = ()) -> list[tuple[int, int]]:
    spans = [m.span() for m in _PROTECTED.finditer(text)]
    spans += [m.span() for m in _CAPITALISED.finditer(text)]
    pat = _term_pattern(party_terms)
    if pat:
        spans += [m.span() for m in pat.finditer(text)]
    return sorted(spans)


def protected_terms(text: str, party_terms: Sequence[str] = (), drop: Sequence[str] = ()) -> list[str]:
    """The protected terms of a text, in order (case-folded modal/negation words kept as written).
    Terms in `drop` (the party terms, for a party swap) are left out of the comparison."""
    pat = _term_pattern(party_terms)
    masked = pat.sub(lambda m: "\0" * len(m.group(0)), text) if pat else text
    order = sorted([(m.start(), m.group(0)) for m in _PROTECTED.finditer(masked)]
                   + [(m.start(), m.group(0)) for m in _CAPITALISED.finditer(masked)])
    out = [t for _, t in order]
    if pat:
        out += sorted(m.group(0) for m in pat.finditer(text) if m.group(0) not in drop)
    return out


# -- parties of a record ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PartyTerms:
    first: tuple[str, ...]  # the name first, then aliases
    second: tuple[str, ...]

    def all(self) -> list[str]:
        return [*self.first, *self.second]

    def parties(self) -> Parties:
        return Parties(self.first[0] if self.first else "", self.second[0] if self.second else "",
                       {"first_party": list(self.first[1:]), "second_party": list(self.second[1:])})


def party_terms(rec: ClauseRecord) -> PartyTerms:
    """Names as written, plus aliases the clause itself shows: a short form of the name (its first
    word, "Acme" for "Acme Corp.") and quoted definitions right after a name ("Acme Corp. (the "Seller")")."""
    roles = []
    for role in ("first_party", "second_party"):
        name = (rec.party_names.get(role) or "").strip()
        terms = [name] if name else []
        if name:
            terms += short_forms(name)
            m = re.search(re.escape(name) + r"""[^()]{0,80}\(\s*(?:the\s+)?["“]([^"”]{2,40})["”]""", rec.text)
            if m:
                terms.append(m.group(1))
        roles.append(tuple(dict.fromkeys(terms)))
    return PartyTerms(roles[0], roles[1])


# -- synonyms --------------------------------------------------------------------------------------
@lru_cache(maxsize=2)
def load_synonyms(path: str | Path = SYNONYMS_FILE) -> dict[str, tuple[str, ...]]:
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    table = raw.get("synonyms") if isinstance(raw, dict) else None
    if not isinstance(table, dict):
        raise AugmentError(f"{path}: expected a 'synonyms:' mapping of phrase -> [replacements]")
    out = {}
    for phrase, repl in table.items():
        if not isinstance(repl, list) or not repl:
            raise AugmentError(f"{path}: {phrase!r}: give a non-empty list of replacements")
        for r in repl:
            if protected_terms(str(r)):
                raise AugmentError(f"{path}: {phrase!r} -> {r!r}: a replacement may not contain a protected term")
        out[str(phrase).lower()] = tuple(str(r) for r in repl)
    return out


def synonym_variant(text: str, party: Sequence[str], rng: random.Random, max_changes: int = 3,
                    synonyms: dict[str, tuple[str, ...]] | None = None) -> str | None:
    """Replace up to `max_changes` phrases outside protected spans; None when nothing can be replaced."""
    synonyms = synonyms if synonyms is not None else load_synonyms()
    blocked = protected_spans(text, party)
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(p) for p in sorted(synonyms, key=len, reverse=True)) + r")\b")
    hits = []
    for m in pattern.finditer(text):  # lower case only: a capitalised phrase may be a heading or a name
        if any(s < m.end() and m.start() < e for s, e in blocked):
            continue
        hits.append(m)
    if not hits:
        return None
    chosen = sorted(rng.sample(hits, min(max_changes, len(hits))), key=lambda m: m.start())
    out, pos = [], 0
    for m in chosen:
        out += [text[pos : m.start()], rng.choice(synonyms[m.group(0)])]
        pos = m.end()
    return "".join(out) + text[pos:]


# -- back-translation ----------------------------------------------------------------------------
@runtime_checkable
class Translator(Protocol):
    name: str

    def translate(self, texts: Sequence[str]) -> list[str]: ...


@dataclass
class BackTranslator:
    forward: Translator  # English -> pivot
    backward: Translator  # pivot -> English

    @property
    def name(self) -> str:
        return f"{self.forward.name}+{self.backward.name}"

    def round_trip(self, texts: Sequence[str]) -> list[str]:
        return self.backward.translate(self.forward.translate(texts))


def load_back_translator() -> BackTranslator:
    """MarianMT-style models from local folders (CONTRACT_REVIEW_MT_FORWARD, CONTRACT_REVIEW_MT_BACKWARD);
    nothing is downloaded."""
    import os

    fwd, bwd = os.environ.get("CONTRACT_REVIEW_MT_FORWARD"), os.environ.get("CONTRACT_REVIEW_MT_BACKWARD")
    if not fwd or not bwd or not Path(fwd).is_dir() or not Path(bwd).is_dir():
        raise TranslatorUnavailable(
            "back-translation needs a translation model and none is available offline: set "
            "CONTRACT_REVIEW_MT_FORWARD and CONTRACT_REVIEW_MT_BACKWARD to local seq2seq model folders "
            "(e.g. English->German and German->English MarianMT saved with save_pretrained), or leave "
            "`backtranslate` out of --methods")
    return BackTranslator(_HFTranslator(fwd), _HFTranslator(bwd))


class _HFTranslator:
    def __init__(self, folder: str):
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.name = Path(folder).name
        self.tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModelForSeq2SeqLM.from_pretrained(folder, local_files_only=True)

    def translate(self, texts: Sequence[str]) -> list[str]:
        batch = self.tok(list(texts), return_tensors="pt", padding=True, truncation=True, max_length=512)
        out = self.model.generate(**batch, max_new_tokens=512)
        return self.tok.batch_decode(out, skip_special_tokens=True)


# -- party swap ----------------------------------------------------------------------------------
def swap_parties(text: str, terms: PartyTerms) -> str:
    """Exchange first and second party terms in one pass (name <-> name, alias i <-> alias i; an
    alias with no counterpart becomes the other party's name)."""
    mapping = {}
    for mine, theirs in ((terms.first, terms.second), (terms.second, terms.first)):
        for i, t in enumerate(mine):
            mapping[t] = theirs[i] if i < len(theirs) else theirs[0]
    pat = _term_pattern(list(mapping))
    return pat.sub(lambda m: mapping[m.group(0)], text) if pat else text


# -- records and the check -----------------------------------------------------------------------
def _augmented(src: ClauseRecord, text: str, method: str, k: int, swap: PartyTerms | None = None) -> ClauseRecord:
    """The augmented record; `swap` (party_swap) exchanges the sides: the obligated party and the risk's
    bearer change roles, and the reason names the other party."""
    party = _FLIP.get(src.party, src.party) if swap else src.party
    risk_to = _FLIP.get(src.risk_to, src.risk_to) if swap else src.risk_to
    # a name ending in "." can end the reason's sentence: keep exactly one full stop after the swap
    reason = (swap_parties(src.reason, swap).rstrip(".") + ".") if swap else src.reason
    answer = Answer(tuple(src.clause_types), party, src.risk, src.risk_category, reason, risk_to=risk_to,
                    severity=src.severity)
    return ClauseRecord.model_validate({
        **src.model_dump(exclude_none=True, exclude={"verified", "labeller", "risk_graded", "risk_annotations",
                                                     "risk_adjudicator"}),
        "id": f"{src.id}#{method}{k}", "source": "augmented", "source_id": src.id, "augmentation": method,
        "text": text, "input": build_input(text, dict(src.party_names)), "output": answer.to_json(),
        "party": party, "risk_to": risk_to, "reason": reason,
    })


def _role_counts(text: str, terms: PartyTerms) -> tuple[int, int]:
    """How often each side is mentioned (by name or alias)."""
    pat = _term_pattern(terms.all())
    first = set(terms.first)
    hits = [m.group(0) for m in pat.finditer(text)] if pat else []
    n_first = sum(h in first for h in hits)
    return n_first, len(hits) - n_first


def check_augmentation(src: ClauseRecord, aug: ClauseRecord) -> None:
    """Raise AugmentationRefused unless `aug` keeps every protected term and label it must keep."""
    if src.split != "train" or aug.split != src.split:
        raise AugmentationRefused(f"{src.id}: only train records are augmented, and in their own split")
    if aug.source != "augmented" or aug.source_id != src.id:
        raise AugmentationRefused(f"{aug.id}: must be source 'augmented' with source_id {src.id}")
    if aug.text == src.text:
        raise AugmentationRefused(f"{aug.id}: text unchanged")
    method = (aug.augmentation or "").split(":")[0]
    same = ("clause_types", "severity", "risk", "risk_category", "party_names", "doc_id")
    for name in same + (() if method == "party_swap" else ("reason", "risk_to")):
        if getattr(aug, name) != getattr(src, name):
            raise AugmentationRefused(f"{aug.id}: {name} changed")
    terms = party_terms(src)
    if method == "party_swap":
        for name in ("risk_to", "party"):
            want = _FLIP.get(getattr(src, name), getattr(src, name))
            if getattr(aug, name) != want:
                raise AugmentationRefused(f"{aug.id}: {name} {getattr(src, name)} must become {want}, "
                                          f"got {getattr(aug, name)}")
        if protected_terms(src.text, terms.all(), drop=terms.all()) != protected_terms(aug.text, terms.all(), drop=terms.all()):
            raise AugmentationRefused(f"{aug.id}: a protected term other than the parties changed")
        if _role_counts(src.text, terms) != _role_counts(aug.text, terms)[::-1]:
            raise AugmentationRefused(f"{aug.id}: party mentions were not exchanged one for one")
        if src.party in _FLIP:
            # the obligated party must be one the swap can see: the rule labeller reads the same
            # terms and has to find the duty on the labelled side before and on the other side after
            before = label_obligation(src.text, terms.parties()).party
            after = label_obligation(aug.text, terms.parties()).party
            if before != src.party or after != want:
                raise AugmentationRefused(f"{aug.id}: the obligated party is not named by terms the swap "
                                          f"exchanged (rules: {before} -> {after})")
    else:
        if aug.party != src.party:
            raise AugmentationRefused(f"{aug.id}: party changed")
        if protected_terms(src.text, terms.all()) != protected_terms(aug.text, terms.all()):
            raise AugmentationRefused(f"{aug.id}: a protected term changed")


@dataclass
class AugmentReport:
    made: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)
    no_candidate: Counter = field(default_factory=Counter)
    skipped_not_train: int = 0
    skipped_augmented: int = 0

    def summary(self) -> str:
        return (f"augmented: {dict(self.made)}; refused by the check: {dict(self.refused)}; nothing to change: "
                f"{dict(self.no_candidate)}; skipped (not train): {self.skipped_not_train}; "
                f"skipped (already augmented): {self.skipped_augmented}")


def augment_records(records: Sequence[ClauseRecord], methods: Sequence[str], per_record: int = 1, seed: int = 0,
                    translator: BackTranslator | None = None) -> tuple[list[ClauseRecord], AugmentReport]:
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise AugmentError(f"unknown augmentation method(s) {unknown or methods}; choose from {', '.join(METHODS)}")
    if "backtranslate" in methods and translator is None:
        translator = load_back_translator()
    rng = random.Random(seed)
    report = AugmentReport()
    out: list[ClauseRecord] = []
    train = []
    for r in records:
        if r.split != "train":
            report.skipped_not_train += 1
        elif r.source == "augmented":
            report.skipped_augmented += 1
        else:
            train.append(r)

    def keep(src: ClauseRecord, aug: ClauseRecord, method: str) -> None:
        try:
            check_augmentation(src, aug)
        except AugmentationRefused:
            report.refused[method] += 1
            return
        out.append(aug)
        report.made[method] += 1

    for src in train:
        terms = party_terms(src)
        if "synonym" in methods:
            seen = set()
            for k in range(per_record):
                text = synonym_variant(src.text, terms.all(), rng)
                if text is None:
                    report.no_candidate["synonym"] += 1
                    break
                if text in seen:
                    continue
                seen.add(text)
                keep(src, _augmented(src, text, "synonym", k), "synonym")
        if "party_swap" in methods:
            if not terms.first or not terms.second or src.party_names.get("second_party") == "the user":
                # a Terms of Service names the sides "we"/"you": swapping them needs grammar, not names
                report.no_candidate["party_swap"] += 1
            else:
                text = swap_parties(src.text, terms)
                if text == src.text:
                    report.no_candidate["party_swap"] += 1
                else:
                    keep(src, _augmented(src, text, "party_swap", 0, swap=terms), "party_swap")
    if "backtranslate" in methods and train:
        texts = translator.round_trip([r.text for r in train])
        for src, text in zip(train, texts):
            keep(src, _augmented(src, text, f"backtranslate:{translator.name}", 0), "backtranslate")
    return out, report


def augment_file(data: Path, out: Path, methods: Sequence[str], per_record: int = 1, with_source: bool = False,
                 seed: int = 0) -> AugmentReport:
    records = read_records(data)
    augmented, report = augment_records(records, methods, per_record, seed)
    if not any(r.split == "train" for r in records):
        raise AugmentError(f"{data}: no train records; only the train split is augmented (never validation or test)")
    kept = [r for r in records if r.split == "train"] if with_source else []
    write_records(out, kept + augmented)
    return report
