"""Which language a contract is written in, from its text alone (no model, no network).

    report = detect_language(text)
    report.language, report.name      # "zh", "Chinese"
    report.supported                  # False: the reviewer reads English contracts only
    report.warning()                  # what to tell the lawyer, or None
    report.shares                     # {"en": 0.55, "zh": 0.45} for a bilingual contract

The text is read paragraph by paragraph. A paragraph's script decides most languages
outright (Han without kana: Chinese; kana: Japanese; Hangul: Korean; Cyrillic, Greek,
Arabic, Hebrew, Devanagari, Thai); a Latin-script paragraph is given to the language whose
most frequent function words it uses most ("the", "shall", "of" / "der", "und", "die" /
"le", "les", "des" ...), with its letters (ß, ñ, ł, ő ...) as a tie-breaker. Paragraph
shares are weighted by their length in words (a Han character counts as a word's worth of
text divided by 1.5), so a bilingual contract shows both halves. Paragraphs with no
evidence (headings, numbers) are left out of the shares.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

SUPPORTED = ("en",)  # the languages the reviewer model was trained on
MIXED_SHARE = 0.1  # other languages with this share of the text make the contract mixed

NAMES = {
    "en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "pt": "Portuguese",
    "nl": "Dutch", "sv": "Swedish", "da": "Danish", "no": "Norwegian", "pl": "Polish", "cs": "Czech",
    "ro": "Romanian", "fi": "Finnish", "hu": "Hungarian", "tr": "Turkish", "id": "Indonesian",
    "zh": "Chinese", "ja": "Japanese", "ko": "Korean", "ru": "Russian", "uk": "Ukrainian", "el": "Greek",
    "ar": "Arabic", "he": "Hebrew", "hi": "Hindi", "th": "Thai", "und": "an unknown language",
}

# the most frequent function words of each language (and of its contracts: "shall", "hereby"); no
# one-letter words: "a", "i", "v" are shared by too many languages and by list markers
_STOPWORDS = {
    "en": "the of and to in is that for be by shall or any this with as on such not will which are party "
          "agreement hereby herein may its other from under all",
    "de": "der die das und zu den von mit sich des ist im dem nicht ein eine als auch es an werden aus er hat "
          "dass sie nach bei vertrag oder wird",
    "fr": "le la les de des du et en un une est que qui dans pour pas au par sur sont ou aux ce cette il être "
          "contrat partie ses",
    "es": "el la los las de del en un una que es por con para se al lo su sus como contrato parte será",
    "it": "il lo la gli le di del della in un una che per con non si al dei delle da come contratto parte",
    "pt": "os as de do da dos das em um uma que para com não se por ao na no contrato parte será",
    "nl": "de het een en van in is dat op te zijn voor met die niet aan er als bij door overeenkomst partij",
    "sv": "och att det som en på är av för med till den har de inte om ett avtal part ska",
    "da": "og at det som en på er af for med til den har de ikke om et aftale part skal",
    "no": "og at det som en på er av for med til den har de ikke om et avtale part skal",
    "pl": "na do że się nie jest to od przez dla jak umowy umowa strony strona",
    "cs": "na se je že do to jako pro by od po smlouvy smlouva strana strany",
    "ro": "și în de la cu pe că nu se un este din pentru care contract partea părți",
    "fi": "ja on ei että se oli hän mutta kun myös tai jos sopimus osapuoli",
    "hu": "az és hogy nem is egy van meg de ki el szerződés fél",
    "tr": "ve bir bu da de ile için olarak olan gibi sözleşme taraf",
    "id": "yang dan di ke dari untuk dengan ini itu dalam pada adalah perjanjian pihak",
}
_STOP = {lang: set(words.split()) for lang, words in _STOPWORDS.items()}
_LANGUAGES_OF: dict[str, list[str]] = {}
for _lang, _words in _STOP.items():
    for _w in _words:
        _LANGUAGES_OF.setdefault(_w, []).append(_lang)
_LETTERS = {  # letters that point to one language among the Latin-script ones
    "de": "äöüß", "fr": "èêëçœ", "es": "ñ¿¡", "pt": "ãõ", "pl": "ąęłńśźż", "cs": "ěřůč", "ro": "ăâșțş",
    "hu": "őű", "tr": "ğış", "sv": "å", "da": "æø", "no": "æøå", "it": "ì",
}
_SCRIPTS = (  # (script, first, last code point)
    ("Han", 0x4E00, 0x9FFF), ("Han", 0x3400, 0x4DBF), ("Han", 0xF900, 0xFAFF), ("Kana", 0x3040, 0x30FF),
    ("Hangul", 0xAC00, 0xD7AF), ("Hangul", 0x1100, 0x11FF), ("Cyrillic", 0x0400, 0x04FF), ("Greek", 0x0370, 0x03FF),
    ("Arabic", 0x0600, 0x06FF), ("Hebrew", 0x0590, 0x05FF), ("Devanagari", 0x0900, 0x097F), ("Thai", 0x0E00, 0x0E7F),
)
_SCRIPT_LANGUAGE = {"Hangul": "ko", "Greek": "el", "Arabic": "ar", "Hebrew": "he", "Devanagari": "hi", "Thai": "th"}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


@dataclass(frozen=True)
class LanguageReport:
    language: str  # ISO 639-1 code of the main language, "und" when there is no evidence
    script: str  # "Latin", "Han", "Cyrillic", ...
    confidence: float  # share of the weighed text in the main language
    shares: dict[str, float] = field(default_factory=dict)  # language -> share, largest first

    @property
    def name(self) -> str:
        return NAMES.get(self.language, self.language)

    @property
    def mixed(self) -> bool:
        return sum(share for lang, share in self.shares.items() if lang != self.language) >= MIXED_SHARE

    @property
    def supported(self) -> bool:
        return self.language in SUPPORTED and not self.mixed

    def warning(self) -> str | None:
        """What a lawyer must be told before reading a review of this text, or None."""
        if self.language == "und":
            return "The language of this text could not be recognised; the reviewer reads English contracts only."
        if self.language not in SUPPORTED:
            return (f"This contract is in {self.name}. The reviewer was trained on English contracts only: its "
                    f"labels for {self.name} text are not reliable. Have it reviewed by a lawyer who reads "
                    f"{self.name}, or upload an English version.")
        if self.mixed:
            others = ", ".join(f"{NAMES.get(lang, lang)} ({share:.0%})" for lang, share in self.shares.items()
                               if lang != self.language)
            return (f"Part of this contract is not in English: {others}. Only the English clauses are reviewed "
                    f"reliably; check the others yourself.")
        return None

    def to_dict(self) -> dict:
        return {"language": self.language, "name": self.name, "script": self.script,
                "confidence": round(self.confidence, 3), "shares": {k: round(v, 3) for k, v in self.shares.items()},
                "supported": self.supported, "warning": self.warning()}


@functools.lru_cache(maxsize=8192)
def _script(ch: str) -> str | None:
    if ch.isascii():
        return "Latin" if ch.isalpha() else None
    cp = ord(ch)
    for name, first, last in _SCRIPTS:
        if first <= cp <= last:
            return name
    if ch.isalpha() and "LATIN" in unicodedata.name(ch, ""):
        return "Latin"
    return None


def _latin_language(words: list[str]) -> tuple[str | None, float]:
    """(language, evidence) of a Latin-script paragraph's lower-cased words."""
    counts = Counter(words)
    scores: Counter = Counter()
    distinct: Counter = Counter()
    for w, n in counts.items():
        for lang in _LANGUAGES_OF.get(w, ()):
            scores[lang] += n
            distinct[lang] += 1
    letters = Counter(c for w in counts for c in w if not c.isascii())
    for lang, marks in _LETTERS.items():
        scores[lang] += 0.5 * sum(letters[c] for c in marks)
    if not scores:
        return None, 0.0
    best = max(scores, key=scores.get)
    # two different function words at least: "a" or "v" alone prove nothing
    return (best, scores[best]) if scores[best] >= 2 and distinct[best] >= 2 else (None, 0.0)


def paragraph_language(text: str) -> tuple[str | None, str | None, float]:
    """(language, script, weight) of one paragraph; language None when it holds no evidence."""
    scripts = Counter(s for s in map(_script, text) if s)
    if not scripts:
        return None, None, 0.0
    script, n = scripts.most_common(1)[0]
    if script in ("Han", "Kana"):
        cjk = scripts["Han"] + scripts["Kana"]
        if cjk < 0.3 * sum(scripts.values()):
            script = "Latin"
        else:
            lang = "ja" if scripts["Kana"] >= 0.05 * cjk else "zh"
            return lang, "Han" if lang == "zh" else "Kana", cjk / 1.5
    if script == "Cyrillic":
        return ("uk" if re.search(r"[іїєґ]", text.lower()) else "ru"), script, len(_WORD.findall(text))
    if script in _SCRIPT_LANGUAGE:
        return _SCRIPT_LANGUAGE[script], script, len(_WORD.findall(text))
    words = [w.lower() for w in _WORD.findall(text) if all(_script(c) == "Latin" for c in w)]
    lang, _ = _latin_language(words)
    return lang, "Latin", float(len(words)) if lang else 0.0


def detect_language(text: str) -> LanguageReport:
    weights: Counter = Counter()
    scripts: Counter = Counter()
    for para in re.split(r"\n\s*\n|\n(?=\S)", text):
        for chunk in re.findall(r".{1,600}(?:\s|$)", para, re.S) or [para]:
            lang, script, weight = paragraph_language(chunk)
            if lang:
                weights[lang] += weight
                scripts[script] += weight
    total = sum(weights.values())
    if not total:
        return LanguageReport("und", "", 0.0, {})
    shares = {lang: w / total for lang, w in weights.most_common() if w / total >= 0.01}
    main = next(iter(shares))
    return LanguageReport(main, scripts.most_common(1)[0][0], shares[main], shares)
