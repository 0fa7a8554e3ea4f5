"""Which clauses go to annotators next: uncertainty sampling, a random share, and overlap.

    picked = select_batch(candidates, SelectionConfig(batch_size=200, random_share=0.2, overlap_share=0.1))

- Uncertainty sampling: the clauses the model is least sure of (lowest `confidence`) come
  first: an annotator's minute there teaches the model most.
- A random share of the batch is drawn uniformly from the remaining clauses, so the
  labelled set is not only hard cases (it keeps an unbiased sample for estimating quality).
- Overlap: a fraction of the picked tasks is labelled by two annotators; agreement on those
  measures how reliable the labels are, and their disagreements go to adjudication.

Everything is seeded: the same candidates and config always pick the same batch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class SelectionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(100, ge=1, description="tasks to push in this batch")
    random_share: float = Field(0.2, ge=0.0, le=1.0, description="share of the batch drawn at random")
    overlap_share: float = Field(0.1, ge=0.0, le=1.0, description="share of the batch labelled by two annotators")
    overlap_annotators: int = Field(2, ge=2, le=5)
    seed: int = 0


@dataclass(frozen=True)
class Candidate:
    key: str  # the clause id
    confidence: float  # the model's confidence in its prediction, 0..1


@dataclass(frozen=True)
class Picked:
    key: str
    confidence: float
    why: str  # "uncertain" | "random"
    annotators: int  # 1, or config.overlap_annotators for an overlap task


def select_batch(candidates: list[Candidate], config: SelectionConfig) -> list[Picked]:
    """Pick up to `batch_size` candidates; the result is ordered uncertain-first."""
    rng = random.Random(config.seed)
    n = min(config.batch_size, len(candidates))
    n_random = round(n * config.random_share)
    n_uncertain = n - n_random
    # ties broken by key, so the order does not depend on the input order
    ranked = sorted(candidates, key=lambda c: (c.confidence, c.key))
    uncertain = ranked[:n_uncertain]
    rest = sorted(ranked[n_uncertain:], key=lambda c: c.key)
    randoms = rng.sample(rest, min(n_random, len(rest)))
    picked = [(c, "uncertain") for c in uncertain] + [(c, "random") for c in sorted(randoms, key=lambda c: c.key)]
    n_overlap = round(len(picked) * config.overlap_share)
    overlap = set(rng.sample(range(len(picked)), n_overlap))
    return [Picked(c.key, c.confidence, why, config.overlap_annotators if i in overlap else 1)
            for i, (c, why) in enumerate(picked)]
