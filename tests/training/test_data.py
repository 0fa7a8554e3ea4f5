import pytest
import torch

from contract_review.records import read_records
from contract_review.training.config import DataConfig
from contract_review.training.data import IGNORE, BatchPlan, collate_packed, encode_sft, load_split, pack
from contract_review.training.models import load_causal_lm, load_tokenizer


def test_sft_loss_is_on_the_answer_tokens_only(small_dataset):
    tok = load_tokenizer("default")
    record = read_records(small_dataset / "train.jsonl")[0]
    ex = encode_sft(record, tok, 512)
    answer = [t for t, lab in zip(ex["input_ids"], ex["labels"]) if lab != IGNORE]
    text = tok.decode(answer)
    assert text.startswith(record.output) and text.rstrip().endswith("<|im_end|>")
    prompt = tok.decode([t for t, lab in zip(ex["input_ids"], ex["labels"]) if lab == IGNORE])
    assert record.instruction in prompt and "<|im_start|>assistant" in prompt


def test_a_too_long_clause_is_cut_but_never_its_answer(small_dataset):
    tok = load_tokenizer("default")
    record = read_records(small_dataset / "train.jsonl")[0]
    ex = encode_sft(record, tok, 128)
    assert len(ex["input_ids"]) <= 128
    assert tok.decode([t for t, lab in zip(ex["input_ids"], ex["labels"]) if lab != IGNORE]).startswith(record.output)


@pytest.mark.parametrize("attn,block_mask", [("sdpa", False), ("eager", False), ("sdpa", True)])
def test_packing_keeps_examples_apart(attn, block_mask):
    """Logits of examples packed in one row equal the logits of each example alone (tolerance 1e-4, fp32):
    from position_ids alone (transformers builds the document mask; what training uses) and from our
    dense 4-D mask (the fallback for a transformers without packed-sequence detection)."""
    torch.manual_seed(0)
    model = load_causal_lm(config="tiny-llama", random_init=True, vocab_size=1000, attn_implementation=attn).eval()
    model.config.use_cache = False  # as in training: with a cache transformers skips the detection
    examples = [{"input_ids": torch.randint(0, 1000, (n,)).tolist(), "labels": [1] * n} for n in (7, 12, 5)]
    rows = pack(examples, 32)
    assert len(rows) == 1
    batch = collate_packed(rows + [rows[0][1:]], pad_id=0, block_mask=block_mask)  # a second, padded row
    assert ("attention_mask" in batch) == block_mask
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"),
                       position_ids=batch["position_ids"]).logits
        for b, row in enumerate(rows + [rows[0][1:]]):
            at = 0
            for ex in row:
                n = len(ex["input_ids"])
                alone = model(input_ids=torch.tensor([ex["input_ids"]])).logits[0]
                torch.testing.assert_close(packed[b, at : at + n], alone, atol=1e-4, rtol=1e-4)
                at += n
    starts = [0, len(rows[0][0]["input_ids"]), len(rows[0][0]["input_ids"]) + len(rows[0][1]["input_ids"])]
    assert [int(batch["position_ids"][0, s]) for s in starts] == [0, 0, 0]


def test_batch_plan_resumes_at_the_same_batch():
    lengths = list(range(5, 105))
    a = BatchPlan(lengths, batch_size=4, seed=3)
    seen = [a.next() for _ in range(40)]  # crosses an epoch boundary (25 batches per epoch)
    b = BatchPlan(lengths, batch_size=4, seed=3)
    for _ in range(17):
        b.next()
    c = BatchPlan(lengths, batch_size=4, seed=3)
    c.load_state(b.state())
    assert [c.next() for _ in range(23)] == seen[17:]
    assert BatchPlan(lengths, 4, seed=4).batches(0) != a.batches(0)


def test_batch_plan_gives_each_rank_its_own_share():
    lengths = [10] * 32
    r0 = BatchPlan(lengths, batch_size=2, seed=0, rank=0, world=2).batches(0)
    r1 = BatchPlan(lengths, batch_size=2, seed=0, rank=1, world=2).batches(0)
    assert len(r0) == len(r1) == 8
    assert not set(sum(r0, [])) & set(sum(r1, []))


def test_subset_thins_only_cuad_other(small_dataset):
    records = load_split(DataConfig(dir=str(small_dataset)), "train")
    thin = load_split(DataConfig(dir=str(small_dataset), subset={"other_fraction": 0.0}), "train")
    assert not [r for r in thin if r.source == "cuad" and r.clause_types == ["other"]]
    assert len(thin) == len([r for r in records if not (r.source == "cuad" and r.clause_types == ["other"])])
