import pytest
from pydantic import ValidationError

from contract_review.annotation.tasks import Candidate, SelectionConfig, select_batch


def _candidates(n=100):
    return [Candidate(f"c{i:03d}", confidence=(i % 50) / 50 + i / 10_000) for i in range(n)]


def test_least_confident_come_first_and_a_share_is_random():
    cands = _candidates()
    picked = select_batch(cands, SelectionConfig(batch_size=20, random_share=0.25, overlap_share=0.0))
    assert len(picked) == 20 and len({p.key for p in picked}) == 20
    uncertain = [p for p in picked if p.why == "uncertain"]
    randoms = [p for p in picked if p.why == "random"]
    assert len(uncertain) == 15 and len(randoms) == 5
    lowest = sorted(cands, key=lambda c: c.confidence)[:15]
    assert [p.key for p in uncertain] == [c.key for c in lowest]
    assert all(r.confidence >= uncertain[-1].confidence for r in randoms)


def test_overlap_share_gets_two_annotators_and_selection_is_reproducible():
    cfg = SelectionConfig(batch_size=40, random_share=0.2, overlap_share=0.25, seed=7)
    a, b = select_batch(_candidates(), cfg), select_batch(list(reversed(_candidates())), cfg)
    assert a == b
    assert sum(p.annotators == 2 for p in a) == 10 and all(p.annotators in (1, 2) for p in a)


def test_a_small_pool_is_taken_whole_and_bad_shares_are_refused():
    assert len(select_batch(_candidates(3), SelectionConfig(batch_size=10))) == 3
    with pytest.raises(ValidationError, match="random_share"):
        SelectionConfig(random_share=1.5)
