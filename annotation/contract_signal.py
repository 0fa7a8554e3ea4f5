"""Whether a text looks like a contract at all, so the app can refuse random text.

    signal = contract_signal(text)
    signal.looks_like_contract     # False for a news article, a recipe, lorem ipsum, keyboard mashing
    signal.reasons                 # what is missing, in words a user reads

Four measurements, each with the value that separates the 450 CUAD contracts and the
Terms of Service of CLAUDETTE from other text (the tests check both sides):
- `word_share`: the share of tokens that look like words of a language (letters only,
  a vowel, no run of five consonants, under 25 letters); random text and code fall low;
- `contract_terms`: words of contracts per 1,000 words ("agreement", "party", "shall",
  "hereby", "terminate" ... in English, and the like in the other languages detected,
  "合同", "甲方" in Chinese); a story or an article has few;
- `sections`: numbered items at the start of a line or after a sentence ("1.", "2.1",
  "(a)", "Article 3", "§ 2", "第三条");
- `parties`: whether an opening names two parties ("between X and Y", "甲方 ... 乙方").
It looks like a contract when the words are words, contract terms are frequent, and it
has numbered sections or names its parties (or is short and dense with contract terms, as
a one-page joint filing agreement is).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .language import detect_language

MIN_WORD_SHARE = 0.7
MIN_CONTRACT_TERMS = 8.0  # per 1,000 words
MIN_SECTIONS = 2
DENSE_TERMS = 25.0  # per 1,000 words: a short agreement without numbered sections ("the undersigned agree ...")

_TERMS = {
    "en": "agreement agreements contract party parties shall hereby herein hereof hereunder thereof whereas "
          "term terms terminate termination obligations obligation liability liable indemnify indemnification "
          "warrants warranty warranties governed jurisdiction arbitration breach notice notices payment fees "
          "confidential confidentiality license licensee licensor assign assignment consent provisions provision "
          "effective executed witness clause section article schedule exhibit damages covenants represents "
          "agree agrees you we services",
    "de": "vertrag vertrages vertragsparteien partei parteien verpflichtet pflichten kündigung haftung gewährleistung "
          "gericht zahlung vergütung vertraulichkeit lizenz paragraph absatz anlage",
    "fr": "contrat parties partie obligations résiliation responsabilité garantie paiement confidentialité licence "
          "article annexe présent conformément",
    "es": "contrato partes parte obligaciones terminación responsabilidad garantía pago confidencialidad licencia "
          "cláusula anexo presente conformidad",
    "it": "contratto parti parte obblighi risoluzione responsabilità garanzia pagamento riservatezza licenza "
          "articolo allegato presente",
    "pt": "contrato partes parte obrigações rescisão responsabilidade garantia pagamento confidencialidade licença "
          "cláusula anexo presente",
    "nl": "overeenkomst partijen partij verplichtingen beëindiging aansprakelijkheid garantie betaling "
          "vertrouwelijkheid licentie artikel bijlage",
    "pl": "umowa umowy umowę stron strony strona zobowiązuje zobowiązania wypowiedzenia odpowiedzialność płatność "
          "faktury załącznik",
    "cs": "smlouva smlouvy smluvní strany strana závazky výpověď odpovědnost platba faktury příloha",
    "ro": "contract contractul părțile partea obligații reziliere răspundere plata factura anexa",
    "sv": "avtal avtalet parterna part skyldigheter uppsägning ansvar betalning faktura bilaga",
    "da": "aftale aftalen parterne part forpligtelser opsigelse ansvar betaling faktura bilag",
    "no": "avtale avtalen partene part forpliktelser oppsigelse ansvar betaling faktura vedlegg",
    "ru": "договор договора стороны сторона обязуется обязательства ответственность оплата оплачивает расторжение "
          "приложение приложении настоящий",
    "uk": "договір договору сторони сторона зобов'язується зобов'язання відповідальність оплата розірвання додаток",
}
_TERM_SETS = {lang: set(words.split()) for lang, words in _TERMS.items()}
_CJK_TERMS = re.compile(r"合同|协议|協議|契約|甲方|乙方|双方|雙方|条款|條款|违约|違約|终止|終止|责任|責任|本合同|本协议|계약|당사자")
_SECTION = re.compile(
    r"(?:^|\n|[.;:]\s+)[ \t]*(?:\d{1,3}(?:\.\d{1,3}){0,3}\.?[ \t]+[A-Z\"“(]|\([a-z]{1,3}\)[ \t]+\S|"
    r"(?:ARTICLE|Article|SECTION|Section|Clause|CLAUSE|Artikel|Articolo|Artículo|Artigo|Статья)\s+[\dIVXLC]+|"
    r"§\s*\d+|Cláusula\s+\w+|第[一二三四五六七八九十百\d]+[条條章])")
_PARTIES = re.compile(
    r"\b(?:between|by and between|by and among|entre|zwischen|tra|tussen)\b.{3,400}?\b(?:and|et|und|y|e|en)\b|"
    r"甲方.{0,400}?乙方|\b(?:Party A|Party B)\b|\b(?:you|user)\b.{0,200}\b(?:we|us|our)\b",
    re.S | re.I,
)
_TOKEN = re.compile(r"\S+")
_VOWEL = re.compile(r"[aeiouyàáâãäåæèéêëìíîïòóôõöøùúûüýÿœ]", re.I)


@dataclass(frozen=True)
class ContractSignal:
    looks_like_contract: bool
    word_share: float
    contract_terms: float  # per 1,000 words
    sections: int
    parties: bool
    language: str
    reasons: list[str] = field(default_factory=list)  # why it does not look like one

    def to_dict(self) -> dict:
        return {"looks_like_contract": self.looks_like_contract, "word_share": round(self.word_share, 3),
                "contract_terms_per_1000_words": round(self.contract_terms, 1), "sections": self.sections,
                "parties": self.parties, "language": self.language, "reasons": self.reasons}


def _wordlike(token: str) -> bool:
    core = token.strip("\"'“”‘’()[],.;:!?-–—*/«»„")
    if not core or any(c.isdigit() for c in core):
        return False  # numbers are neither words nor noise; left out
    if not all(c.isalpha() or c in "'’-" for c in core):
        return False
    if any(ord(c) > 0x24F for c in core):
        return True  # Cyrillic, Greek, CJK ...: letters of a script are taken as words
    return len(core) <= 25 and bool(_VOWEL.search(core)) and not re.search(r"[^aeiouy\W\d_]{5}", core.lower())


def contract_signal(text: str) -> ContractSignal:
    tokens = _TOKEN.findall(text[:200_000])
    counted = [t for t in tokens if not any(c.isdigit() for c in t.strip("()[].,;:"))]
    word_share = sum(map(_wordlike, counted)) / len(counted) if counted else 0.0
    language = detect_language(text[:200_000])
    words = [t.strip("\"'“”‘’()[],.;:!?").lower() for t in counted]
    cjk_chars = sum(1 for c in text[:200_000] if 0x3400 <= ord(c) <= 0x9FFF or 0xAC00 <= ord(c) <= 0xD7AF)
    if language.script in ("Han", "Kana") or language.language == "ko":
        n_words = max(1.0, cjk_chars / 1.5 + len(words))
        hits = len(_CJK_TERMS.findall(text[:200_000])) * 2 + sum(w in _TERM_SETS["en"] for w in words)
        word_share = max(word_share, 0.9 if cjk_chars > 20 else word_share)
    else:
        terms = _TERM_SETS.get(language.language, set()) | _TERM_SETS["en"]
        n_words = max(1, len(words))
        hits = sum(w in terms for w in words)
    per_1000 = 1000 * hits / n_words
    sections = len(_SECTION.findall(text[:200_000]))
    parties = bool(_PARTIES.search(text[:5000]))
    reasons = []
    if word_share < MIN_WORD_SHARE:
        reasons.append(f"only {word_share:.0%} of it reads as words of a language")
    if per_1000 < MIN_CONTRACT_TERMS:
        reasons.append(f"it uses few words of contracts ({per_1000:.1f} per 1,000 words, contracts have "
                       f"{MIN_CONTRACT_TERMS:.0f} or more)")
    if sections < MIN_SECTIONS and not parties and per_1000 < DENSE_TERMS:
        reasons.append("it has no numbered sections and names no parties")
    return ContractSignal(not reasons, word_share, per_1000, sections, parties, language.language, reasons)
