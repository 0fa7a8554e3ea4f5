"""A reviewer of a large published shape with random weights, written as the app would load a real one.

No Llama-2 or Mistral weights exist offline, so the app's "7B on one GPU" benchmark reviews with a
random model of that shape: the same arithmetic, labels that mean nothing. This writes

    OUT/base/      save_pretrained of the random causal LM (bf16) + the tokenizer's files
    OUT/adapter/   a reviewer adapter for it (PEFT LoRA on q_proj,o_proj r=32 alpha=64 + the three
                   heads + reviewer.json), exactly the folder `contract-review train` writes

so that `contract-review review FILE --model OUT/base --adapter OUT/adapter` (and the app's model
choice) load it through the product's own path:

    python bench/app/make_random_reviewer.py --preset llama2-7b --tokenizer DIR --out /tmp/rev7b
    python bench/app/benchmark_review.py --model /tmp/rev7b/base --adapter /tmp/rev7b/adapter --repeat 3

The tokenizer defaults to the CPU default model's; the random model takes its vocabulary size so any
tokenizer fits (Llama-2's own has 32,000 entries, SmolLM2's 49,152: +70M parameters, <1% of a 7B).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
                   "tokenizer.model", "generation_config.json")


def build(preset: str, tokenizer: str, out: Path, seed: int = 0) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from contract_review.training.models import architecture_config, load_tokenizer, resolve_model
    from contract_review.training.reviewer_model import Labels, ReviewerModel, save_reviewer

    tok = load_tokenizer(tokenizer)
    cfg = architecture_config(preset, vocab_size=len(tok))
    cfg._attn_implementation = "sdpa"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    with torch.device(device):  # a 7B built on the host in float32 would take minutes and 27 GB
        lm = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    built_s = time.perf_counter() - t0
    base, adapter = out / "base", out / "adapter"
    lm.save_pretrained(base, safe_serialization=True)
    src = Path(resolve_model(tokenizer))
    for name in TOKENIZER_FILES:
        if (src / name).exists():
            shutil.copy2(src / name, base / name)
    tok.save_pretrained(base)  # whatever the source folder lacked (a GGUF-converted tokenizer, say)
    lora = LoraConfig(r=32, lora_alpha=64, lora_dropout=0.0, target_modules=["q_proj", "o_proj"],
                      task_type="CAUSAL_LM")
    model = ReviewerModel(get_peft_model(lm, lora), cfg.hidden_size, Labels.from_taxonomy())
    save_reviewer(model, adapter, {"base_model": str(base.resolve()), "max_length": 256,
                                   "model_version": f"random-{preset}-untrained", "data_version": "none"})
    params = sum(p.numel() for p in lm.parameters())
    return {"preset": preset, "params": params, "vocab_size": cfg.vocab_size, "device": device,
            "build_s": round(built_s, 1), "written_s": round(time.perf_counter() - t0, 1),
            "base": str(base), "adapter": str(adapter)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="llama2-7b", help="training.models preset: llama2-7b, llama2-13b, mistral-7b, tiny-llama")
    ap.add_argument("--tokenizer", default="default", help="a model folder with tokenizer files (default: the CPU default model's)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    info = build(args.preset, args.tokenizer, args.out, args.seed)
    print(" ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
