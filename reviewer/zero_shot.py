"""A base causal LM as a zero-shot labeller, two ways: scoring the label options, or free JSON.

Scoring (`ScoringPredictor`, the default): the model reads the project's prompt
(`prompt.chat_messages` rendered with its chat template) and, for each label field, the
log-likelihood of every allowed answer is compared:

    ... <|im_start|>assistant\\n{"clause_types": ["  +  cap_on_liability"     (each of 47 types)
    ... <|im_start|>assistant\\n{"party": "         +  first_party"          (4 parties)
    ... <|im_start|>assistant\\n{"risk": "          +  medium"               (4 levels)

The answer is always a valid label, every option gets a probability (a softmax over the
options' summed token log-probabilities), and it is several times faster than generating
the JSON token by token. Three things keep it cheap on a CPU:
- the system prompt and instruction, identical for every clause, are run once and their
  keys/values reused (expanded over the batch);
- each clause is run once, and all its 55 option continuations are packed after it in
  the same row with a tree-shaped attention mask (an option sees the clause, its field's
  prefix and itself; never another option) and position ids that restart for every
  option, so one forward pass scores every option of a batch of clauses;
- the 49k-word output layer is applied only at the positions that predict option tokens.
A test checks the packed scores against scoring each option in its own plain forward pass.

Free generation (`GenerativePredictor`): greedy decoding of the whole answer, parsed with
`prompt.parse_answer`; an answer that is not valid JSON or names a label outside the
taxonomy becomes a prediction with `error` set (and the raw text kept), never a guess. This
is how a generative (SFT) adapter is evaluated, and how the base model can be checked for
the rate of invalid outputs.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence

import numpy as np
import torch
from peft import PeftModel
from tqdm import tqdm
from transformers import DynamicCache, LlamaModel

from contract_review.predictor import ClauseInput, ClausePrediction
from contract_review.prompt import (INSTRUCTION, SYSTEM, AnswerError, build_input, chat_messages, parse_answer,
                                    render_plain)
from contract_review.taxonomy import Taxonomy, load_taxonomy
from contract_review.training.models import load_causal_lm, load_tokenizer
from contract_review.training.precision import cpu_precision

from .decisions import answer_from_types

# transformers 5 renamed the decoder's cache argument; older versions only know the old name
_CACHE_ARG = "cache" if "cache" in inspect.signature(LlamaModel.forward).parameters else "past_key_values"
FIELD_PREFIX = {"clause_type": '{"clause_types": ["', "party": '{"party": "', "risk": '{"risk": "'}


def _render(tokenizer, text: str, party_names: dict[str, str]) -> str:
    messages = chat_messages(SYSTEM, INSTRUCTION, build_input(text, party_names))
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return render_plain(SYSTEM, INSTRUCTION, build_input(text, party_names))


class ScoringPredictor:
    """Zero-shot labels by comparing the log-likelihoods of each field's allowed labels."""

    name = "zero-shot"

    def __init__(self, model, tokenizer, model_version: str, tax: Taxonomy | None = None, batch_size: int = 8,
                 max_clause_tokens: int = 320, autocast: bool | None = None):
        self.model, self.tok = model, tokenizer
        # bf16 matmuls where the CPU has native bf16 (scores within ~1e-2 of fp32); emulated bf16 is slower
        self.autocast = cpu_precision().precision == "bf16" if autocast is None else autocast
        self.precision = "bf16 autocast" if self.autocast else "fp32"
        self.tax = tax or load_taxonomy()
        self.model_version = model_version
        self.batch_size = batch_size
        self.max_clause_tokens = max_clause_tokens
        self.fields = {"clause_type": self.tax.clause_type_ids, "party": self.tax.parties,
                       "risk": self.tax.risk_levels}
        enc = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
        self._enc = enc
        # the shared head and tail of every prompt (before and after the clause's `input`): the
        # longest common token prefix/suffix of two renders, so that head + clause + tail is
        # exactly the tokenization of the whole prompt (BPE merges across the seams otherwise)
        a, b = (enc(_render(tokenizer, t, names)) for t, names in
                (("first clause text", {}), ("another, different one", {"first_party": "Acme Corp."})))
        n = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
        m = next(i for i, (x, y) in enumerate(zip(reversed(a), reversed(b))) if x != y)
        self.head_ids, self.tail_ids = a[:n], a[len(a) - m:]
        self.prefix_ids = {f: enc(p) for f, p in FIELD_PREFIX.items()}
        self.option_ids = {f: [enc(o + '"') for o in opts] for f, opts in self.fields.items()}
        self._head_cache = None
        self.last_seconds: float | None = None

    # -- building the packed rows ----------------------------------------------------------
    def _clause_ids(self, clauses: Sequence[ClauseInput]) -> list[list[int]]:
        """Each prompt's tokens after the shared head; a very long clause is cut before the tail."""
        full = [self._enc(_render(self.tok, c.text, c.party_names)) for c in clauses]
        for ids in full:
            if ids[: len(self.head_ids)] != self.head_ids:  # a merge across the seam: shorten the head
                k = next(i for i, (x, y) in enumerate(zip(ids, self.head_ids)) if x != y)
                self.head_ids, self._head_cache = self.head_ids[:k], None
        h, t = len(self.head_ids), len(self.tail_ids)
        return [ids[h : len(ids) - t][: self.max_clause_tokens] + self.tail_ids for ids in full]

    def _row(self, clause_ids: list[int]):
        """Token ids, position ids (after the shared head), group id per token, and for every
        option the packed indices of its tokens and of the positions that predict them."""
        ids, pos, group = list(clause_ids), list(range(len(clause_ids))), [0] * len(clause_ids)
        parents = {0: None}
        options = []  # (field, option index, token indices, predictor indices)
        start = len(clause_ids)
        for f, prefix in self.prefix_ids.items():
            g_prefix = len(parents)
            parents[g_prefix] = 0
            p_idx = list(range(len(ids), len(ids) + len(prefix)))
            ids += prefix
            pos += list(range(start, start + len(prefix)))
            group += [g_prefix] * len(prefix)
            for k, opt in enumerate(self.option_ids[f]):
                g = len(parents)
                parents[g] = g_prefix
                t_idx = list(range(len(ids), len(ids) + len(opt)))
                ids += opt
                pos += list(range(start + len(prefix), start + len(prefix) + len(opt)))
                group += [g] * len(opt)
                options.append((f, k, t_idx, [p_idx[-1]] + t_idx[:-1]))
        return ids, pos, group, parents, options

    @staticmethod
    def _tree_mask(group: list[int], parents: dict[int, int | None], width: int) -> np.ndarray:
        n_groups = len(parents)
        visible = np.zeros((n_groups, n_groups), dtype=bool)  # visible[g, h]: g's tokens may see h's
        for g in range(n_groups):
            h = g
            while h is not None:
                visible[g, h] = True
                h = parents[h]
        g = np.asarray(group)
        n = len(group)
        m = np.zeros((width, width), dtype=bool)
        m[:n, :n] = np.tril(np.ones((n, n), dtype=bool)) & visible[g[:, None], g[None, :]]
        return m

    def _head(self):
        if self._head_cache is None:
            with torch.inference_mode():
                out = self.model(input_ids=torch.tensor([self.head_ids]), use_cache=True)
            cache = getattr(out, "cache", None) or out.past_key_values  # renamed in transformers 5
            self._head_cache = [(layer.keys, layer.values) for layer in cache.layers]
        return self._head_cache

    @torch.inference_mode()
    def option_logprobs(self, clauses: Sequence[ClauseInput]) -> list[dict[str, np.ndarray]]:
        """Per clause, per field: the summed log-probability of each option, in taxonomy order."""
        rows = [self._row(ids) for ids in self._clause_ids(clauses)]
        head = self._head()
        p = len(self.head_ids)
        width = max(len(r[0]) for r in rows)
        b = len(rows)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        ids = torch.full((b, width), pad, dtype=torch.long)
        pos = torch.zeros((b, width), dtype=torch.long)
        mask = torch.zeros((b, 1, width, p + width), dtype=torch.bool)
        mask[:, :, :, :p] = True  # every token (padding included: no empty rows) sees the shared head
        for i, (r_ids, r_pos, r_group, r_parents, _) in enumerate(rows):
            ids[i, : len(r_ids)] = torch.tensor(r_ids)
            pos[i, : len(r_pos)] = torch.tensor(r_pos) + p
            pos[i, len(r_pos):] = p
            mask[i, 0, :, p:] = torch.from_numpy(self._tree_mask(r_group, r_parents, width))
        cache = DynamicCache()
        for layer, (k, v) in enumerate(head):
            cache.update(k.expand(b, -1, -1, -1).contiguous(), v.expand(b, -1, -1, -1).contiguous(), layer)
        decoder = self.model.get_decoder() if hasattr(self.model, "get_decoder") else self.model.model
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            hidden = decoder(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                             **{_CACHE_ARG: cache}).last_hidden_state.float()
        # gather only the positions that predict option tokens, then the output layer
        row_i, pred_i, tok_i, owner = [], [], [], []
        for i, r in enumerate(rows):
            for n_opt, (f, k, t_idx, p_idx) in enumerate(r[4]):
                row_i += [i] * len(t_idx)
                pred_i += p_idx
                tok_i += [int(ids[i, t]) for t in t_idx]
                owner += [(i, f, k)] * len(t_idx)
        logits = self.model.lm_head(hidden[torch.tensor(row_i), torch.tensor(pred_i)]).float()
        lp = torch.log_softmax(logits, -1)[torch.arange(len(tok_i)), torch.tensor(tok_i)].numpy()
        out = [{f: np.zeros(len(opts)) for f, opts in self.fields.items()} for _ in rows]
        for value, (i, f, k) in zip(lp, owner):
            out[i][f][k] += value
        return out

    def predict(self, clauses: Sequence[ClauseInput], progress: bool = False) -> list[ClausePrediction]:
        t0 = time.perf_counter()
        # similar lengths together keep padding small; results go back to the input order
        order = sorted(range(len(clauses)), key=lambda i: len(clauses[i].text))
        results: list[ClausePrediction | None] = [None] * len(clauses)
        with tqdm(total=len(clauses), desc=self.name, unit="clause", disable=not progress) as bar:
            for s in range(0, len(order), self.batch_size):
                idx = order[s : s + self.batch_size]
                for i, lps in zip(idx, self.option_logprobs([clauses[i] for i in idx])):
                    results[i] = self._prediction(lps)
                bar.update(len(idx))
        self.last_seconds = time.perf_counter() - t0
        return results  # type: ignore[return-value]

    def _prediction(self, lps: dict[str, np.ndarray]) -> ClausePrediction:
        probs = {}
        for f, v in lps.items():
            e = np.exp(v - v.max())
            probs[f] = e / e.sum()
        scores = {f: {o: round(float(p), 4) for o, p in zip(self.fields[f], probs[f])} for f in self.fields}
        best = {f: self.fields[f][int(probs[f].argmax())] for f in self.fields}
        answer = answer_from_types([best["clause_type"]], best["risk"], best["party"], self.tax,
                                   scores["clause_type"])
        p_pos = sum(v for k, v in scores["risk"].items() if self.tax.is_risk_clause(k))
        conf = p_pos if self.tax.is_risk_clause(best["risk"]) else 1 - p_pos
        return ClausePrediction(answer=answer, confidence=round(conf, 4), scores=scores)


class GenerativePredictor:
    """Greedy generation of the answer JSON, parsed with `prompt.parse_answer`."""

    name = "generate"

    def __init__(self, model, tokenizer, model_version: str, tax: Taxonomy | None = None, batch_size: int = 8,
                 max_new_tokens: int = 160):
        self.model, self.tok = model, tokenizer
        self.tax = tax or load_taxonomy()
        self.model_version = model_version
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.last_seconds: float | None = None

    def generate(self, clauses: Sequence[ClauseInput]) -> list[str]:
        self.tok.padding_side = "left"  # generation continues every row from its last real token
        texts = [_render(self.tok, c.text, c.party_names) for c in clauses]
        enc = self.tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=self.tok.pad_token_id)
        return self.tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)

    def predict(self, clauses: Sequence[ClauseInput], progress: bool = False) -> list[ClausePrediction]:
        t0 = time.perf_counter()
        out: list[ClausePrediction] = []
        with tqdm(total=len(clauses), desc=self.name, unit="clause", disable=not progress) as bar:
            for s in range(0, len(clauses), self.batch_size):
                part = clauses[s : s + self.batch_size]
                out += [parse_prediction(raw, self.tax) for raw in self.generate(part)]
                bar.update(len(part))
        self.last_seconds = time.perf_counter() - t0
        return out


def parse_prediction(raw: str, tax: Taxonomy | None = None) -> ClausePrediction:
    """A generated answer as a prediction; unusable output keeps its text and the error kind."""
    tax = tax or load_taxonomy()
    try:
        answer = parse_answer(raw, tax)
    except AnswerError as exc:
        return ClausePrediction(answer=None, raw=raw, error=exc.kind)
    return ClausePrediction(answer=answer, confidence=0.0, raw=raw)


DECODES = ("score", "generate")


def load_zero_shot(base: str | None = None, adapter: str | None = None, decode: str = "score",
                   batch_size: int = 8, name: str = "zero-shot"):
    """A base causal LM (default: the shipped SmolLM2) as a predictor, optionally with a PEFT adapter
    merged in: float32, eval mode, SDPA attention (the packed option masks need it). `decode`:
    "score" compares the label options' likelihoods (always valid), "generate" writes the JSON."""
    if decode not in DECODES:
        raise ValueError(f"decode {decode!r}: use one of {', '.join(DECODES)}")
    model = load_causal_lm(base)
    if adapter:
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    model.eval()
    version = f"{name}:{base or 'default'}" + (f"+{adapter}" if adapter else "")
    cls = ScoringPredictor if decode == "score" else GenerativePredictor
    predictor = cls(model, load_tokenizer(base), model_version=version, batch_size=batch_size)
    predictor.name = f"{name}-generate" if decode == "generate" and name == "zero-shot" else name
    return predictor
