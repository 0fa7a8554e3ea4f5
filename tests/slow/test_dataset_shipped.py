"""Properties of the shipped dataset (data/dataset), checked independently of the builder."""

import re
from collections import Counter, defaultdict

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
