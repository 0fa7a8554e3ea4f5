"""Properties of the shipped dataset (data/dataset), checked independently of the builder."""

import re
from collections import Counter, defaultdict

from contract_review.annotation.claudette import strip_tags
from contract_review.annotation.furniture import find_furniture, mask
from contract_review.annotation.segment import normalize
from contract_review.records import SPLITS


def _words(text):
    return re.findall(r"[a-z0-9]+", text.lower())


def test_no_exact_or_near_duplicate_clause_crosses_splits(dataset):
    """An independent check: candidates share a word 6-gram; confirmed by 3-shingle Jaccard."""
    def key(text):
        return " ".join(_words(text))

    seen = {split: {key(r.text) for r in dataset[split]} for split in SPLITS}
    assert not seen["train"] & seen["validation"]
    assert not seen["train"] & seen["test"]
    assert not seen["validation"] & seen["test"]

    def grams(text, k):
        w = _words(text)
        return {" ".join(w[i : i + k]) for i in range(max(1, len(w) - k + 1))}

    index = defaultdict(set)
    held = [r for split in ("validation", "test") for r in dataset[split]]
    for i, r in enumerate(held):
        for g in grams(r.text, 6):
            index[g].add(i)
    leaks = []
    for r in dataset["train"]:
        cands = Counter(i for g in grams(r.text, 6) for i in index.get(g, ()))
        sh = grams(r.text, 3)
        for i, n in cands.items():
            if n < 2:
                continue
            other = grams(held[i].text, 3)
            if len(sh & other) / len(sh | other) >= 0.8:
                leaks.append((r.id, held[i].id))
    assert not leaks, leaks[:5]


def test_dataset_card_numbers_match_the_shipped_dataset(tmp_path):
    from contract_review.annotation.card import BEGIN, END, update_card
    from contract_review.paths import DATA_DIR, DATASET_DIR, VERIFIED_PARTY_FILE

    card = tmp_path / "README.md"
    card.write_text((DATA_DIR / "README.md").read_text())
    update_card(DATASET_DIR, card, VERIFIED_PARTY_FILE, out_dir=tmp_path)
    section = lambda text: text.split(BEGIN)[1].split(END)[0]  # noqa: E731
    assert section(card.read_text()) == section((DATA_DIR / "README.md").read_text()), \
        "data/README.md is stale: run `contract-review data card`"
    assert (tmp_path / "lengths.png").stat().st_size > 10_000


def test_offsets_point_at_the_clause_text(all_records, cuad_dir, claudette_dir):
    texts = {}
    by_doc = defaultdict(list)
    for r in all_records:
        by_doc[(r.source, r.doc_id)].append(r)
    for (source, doc_id), records in by_doc.items():
        if source == "cuad":
            text = (cuad_dir / "full_contract_txt" / f"{doc_id}.txt").read_text(encoding="utf-8-sig")
            text = mask(text, find_furniture(text))  # a clause's text is its words without page furniture
        else:
            xml = (claudette_dir / "OriginalTaggedDocuments" / f"{doc_id}.xml").read_text(encoding="utf-8")
            text, _ = strip_tags(xml)
        texts[doc_id] = text
        for r in records:
            if source == "claudette" and normalize(text[r.start : r.end]) != r.text:
                continue  # the two unaligned CLAUDETTE sentences keep their tokenised text
            assert normalize(text[r.start : r.end]) == r.text, r.id
    unaligned = sum(
        1 for r in all_records if r.source == "claudette" and normalize(texts[r.doc_id][r.start : r.end]) != r.text
    )
    assert unaligned <= 2
