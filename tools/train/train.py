#!/usr/bin/env python3
"""Train, save and evaluate the bundled demo model (models/coil-demo) in one run on one GPU.

Steps, all in this process:
  1. byte-level BPE tokenizer (8192 tokens) trained on the training split of the corpus;
  2. GraniteMoeHybridForCausalLM, dense, 12 layers (attention at every fourth, no positional encoding),
     trained with AdamW and a cosine schedule on the corpus plus synthetic long-context recall tasks;
  3. saved in bf16 with save_pretrained, then reloaded from disk in float32 for every measurement:
     held-out perplexity, passkey retrieval at 1k/2k/4k/8k tokens, sample generations, and the greedy
     reference ids (on the CPU, float32) that the Java engine is checked against.

The Mamba-2 mixers of transformers fall back to a reference PyTorch scan when mamba_ssm is absent; that scan
materialises (chunk x chunk x heads x state) products per token, far too much memory for training batches.
Training therefore swaps in a chunked scan written with einsum (the same function: the run checks the two
against each other before training and stops if they disagree). All evaluation uses the stock code.

Usage (GPU machine): python3 train.py --data DIR_WITH_corpus.jsonl.xz --out OUT [--train-seconds 300]
"""
import argparse
import hashlib
import io
import json
import lzma
import math
import os
import random
import re
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SPECIAL_TOKENS = ["<|endoftext|>", "<|start_of_role|>", "<|end_of_role|>"]
EOS_ID = 0
CHAT_TEMPLATE = (
    "{% for message in messages %}<|start_of_role|>{{ message['role'] }}<|end_of_role|>"
    "{{ message['content'] }}<|endoftext|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|start_of_role|>assistant<|end_of_role|>{% endif %}"
)
PASSKEY_QUESTION = "\n\nWhat is the pass key? The pass key is"
USER, ASSISTANT = "<|start_of_role|>user<|end_of_role|>", "<|start_of_role|>assistant<|end_of_role|>"


def log(*parts):
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, flush=True)


# ----------------------------------------------------------------------------------------------------------
# Data


def load_corpus(data_dir, heldout_percent):
    """Documents of corpus.jsonl.xz split by a hash of their path: stable across runs and machines."""
    train, heldout = [], []
    with lzma.open(data_dir / "corpus.jsonl.xz", "rt", encoding="utf-8") as lines:
        for line in lines:
            document = json.loads(line)
            bucket = int(hashlib.sha1((document["source"] + "/" + document["path"]).encode()).hexdigest(), 16) % 1000
            (heldout if bucket < heldout_percent * 10 else train).append(document["text"])
    return train, heldout


def chat_documents(data_dir, rng):
    """Short single-turn conversations in the chat template, from man page and Python module summaries."""
    path = data_dir / "pairs.jsonl"
    if not path.exists():
        return []
    documents = []
    questions = {
        "manpage": ["What does {name} do?", "What is {name}?", "Describe {name} in one line.",
                    "Which page documents {name}?"],
        "python-module": ["What is the Python module {name} for?", "What does the {name} module do?",
                          "Describe the Python module {name}."],
    }
    for line in path.read_text(encoding="utf-8").splitlines():
        pair = json.loads(line)
        for question in rng.sample(questions[pair["kind"]], 2):
            name, summary = pair["name"], pair["summary"].rstrip(".")
            answer = f"{name}: {summary}." if pair["kind"] == "manpage" else f"{name} \u2014 {summary}."
            documents.append(render_chat([{"role": "user", "content": question.format(name=name)},
                                          {"role": "assistant", "content": answer}]))
    return documents


def render_chat(messages, add_generation_prompt=False):
    """The same text as CHAT_TEMPLATE renders; checked against the saved tokenizer's template."""
    text = "".join(f"<|start_of_role|>{m['role']}<|end_of_role|>{m['content']}<|endoftext|>\n" for m in messages)
    return text + ("<|start_of_role|>assistant<|end_of_role|>" if add_generation_prompt else "")


def train_tokenizer(texts, vocab_size):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer, length=len(texts))
    assert [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2], "special tokens must take ids 0, 1, 2"
    return tokenizer


def to_stream(tokenizer, texts):
    """All documents, each followed by <|endoftext|>, as one uint16 array."""
    pieces = []
    for start in range(0, len(texts), 2048):
        for encoding in tokenizer.encode_batch(texts[start:start + 2048]):
            pieces.append(np.asarray(encoding.ids, dtype=np.uint16))
            pieces.append(np.asarray([EOS_ID], dtype=np.uint16))
    return np.concatenate(pieces)


class TaskMaker:
    """Synthetic long-context recall rows: a passkey or key-value lines hidden in corpus text, asked at the end.

    Rows are assembled from separately tokenized pieces; the answer tokens get a larger loss weight."""

    def __init__(self, tokenizer, stream, rng):
        self.tokenizer, self.stream, self.rng = tokenizer, stream, rng

    def ids(self, text):
        return self.tokenizer.encode(text).ids

    def filler(self, length):
        start = self.rng.randrange(0, len(self.stream) - length - 1)
        return self.stream[start:start + length].tolist()

    def passkey(self, budget, chat):
        key = str(self.rng.randrange(10000, 100000))
        opening = self.ids(USER) if chat else []
        needle = self.ids(f"\n\nThe pass key is {key}. Remember it. {key} is the pass key.\n\n")
        if chat:
            question = self.ids(f"\n\nWhat is the pass key?<|endoftext|>\n{ASSISTANT}The pass key is")
            answer = self.ids(f" {key}.<|endoftext|>\n")
        else:
            question, answer = self.ids(PASSKEY_QUESTION), self.ids(f" {key}.")
        room = max(0, budget - len(opening) - len(needle) - len(question) - len(answer))
        before = int(room * self.rng.random())
        tokens = opening + self.filler(before) + needle + self.filler(room - before) + question
        return tokens + answer, [0] * len(tokens) + [1] * len(answer)

    def key_values(self, budget, chat):
        count = self.rng.randint(2, 8)
        keys = set()
        while len(keys) < count:
            keys.add("".join(self.rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(2))
                     + "-" + str(self.rng.randrange(10, 100)))
        pairs = [(k, str(self.rng.randrange(1000, 10000))) for k in sorted(keys)]
        self.rng.shuffle(pairs)
        opening = self.ids(USER) if chat else []
        needles = [self.ids(f"\n\nThe value of key {k} is {v}.\n\n") for k, v in pairs]
        asked = self.rng.sample(pairs, self.rng.randint(1, count))
        queries = []
        for index, (k, v) in enumerate(asked):
            if chat:
                lead = "\n\n" if index == 0 else USER
                queries.append((self.ids(f"{lead}What is the value of key {k}?<|endoftext|>\n{ASSISTANT}"
                                         f"The value of key {k} is"), self.ids(f" {v}.<|endoftext|>\n")))
            else:
                queries.append((self.ids(f"\n\nWhat is the value of key {k}? The value of key {k} is"),
                                self.ids(f" {v}.")))
        room = max(0, budget - len(opening) - sum(map(len, needles)) - sum(len(q) + len(a) for q, a in queries))
        cuts = sorted(int(room * self.rng.random()) for _ in needles)
        tokens, previous = list(opening), 0
        for cut, needle in zip(cuts, needles):
            tokens += self.filler(cut - previous) + needle
            previous = cut
        tokens += self.filler(room - previous)
        answer_mask = [0] * len(tokens)
        for question, answer in queries:
            tokens += question + answer
            answer_mask += [0] * len(question) + [1] * len(answer)
        return tokens, answer_mask

    def row(self, length, answer_weight):
        """One row of `length` tokens and per-target weights, starting with a task of random size; a quarter
        of the tasks are chat turns in the chat template."""
        budget = self.rng.randint(min(256, length // 2), length - 16)
        chat = self.rng.random() < 0.25
        tokens, mask = (self.passkey if self.rng.random() < 0.5 else self.key_values)(budget, chat)
        tokens, mask = tokens[:length], mask[:length]
        if not chat:
            tokens, mask = tokens + [EOS_ID], mask + [0]
        rest = length + 1 - len(tokens)
        tokens, mask = tokens + self.filler(rest), mask + [0] * rest
        weights = [answer_weight if m else 1.0 for m in mask]
        return tokens[:length + 1], weights[1:length + 1]


def make_batch(stream, tasks, length, rows, task_fraction, answer_weight, rng):
    inputs, targets, weights = [], [], []
    for _ in range(rows):
        if rng.random() < task_fraction:
            tokens, weight = tasks.row(length, answer_weight)
        else:
            start = rng.randrange(0, len(stream) - length - 2)
            tokens, weight = stream[start:start + length + 1].tolist(), [1.0] * length
        inputs.append(tokens[:-1])
        targets.append(tokens[1:])
        weights.append(weight)
    return (torch.tensor(inputs, dtype=torch.long), torch.tensor(targets, dtype=torch.long),
            torch.tensor(weights, dtype=torch.float32))


# ----------------------------------------------------------------------------------------------------------
# Chunked Mamba-2 scan for training (same function as the stock reference scan)


def segment_sums(a):
    """a: (..., n) -> (..., n, n) with [i, j] = a[j+1] + ... + a[i] for i >= j, -inf above the diagonal.
    Built by a masked cumulative sum, not a difference of cumulative sums, to stay accurate."""
    n = a.size(-1)
    spread = a[..., None, :].expand(*a.shape[:-1], n, n).transpose(-1, -2)  # [i, j] = a[i]
    strictly_lower = torch.tril(torch.ones(n, n, dtype=torch.bool, device=a.device), diagonal=-1)
    sums = torch.cumsum(spread.masked_fill(~strictly_lower, 0.0), dim=-2)
    lower = torch.tril(torch.ones(n, n, dtype=torch.bool, device=a.device), diagonal=0)
    return sums.masked_fill(~lower, float("-inf"))


def chunked_scan(x, dt, A, B, C, chunk):
    """State-space scan y_t = C_t . h_t, h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t, computed chunk by chunk.

    x: (b, T, h, p); dt: (b, T, h) after softplus; A: (h,) negative; B, C: (b, T, g, n). All float32."""
    b, T, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    r = h // g
    pad = (-T) % chunk
    if pad:
        x, dt, B, C = (F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad)) for t in (x, dt, B, C))
    c, l = (T + pad) // chunk, chunk
    xdt = (x * dt[..., None]).view(b, c, l, g, r, p)
    a = (dt * A).view(b, c, l, g, r).permute(0, 3, 4, 1, 2)  # (b, g, r, c, l)
    a_cum = a.cumsum(-1)
    Bc, Cc = B.view(b, c, l, g, n), C.view(b, c, l, g, n)
    # outputs from inputs of the same chunk: a masked, decayed (C B^T) "attention" inside each chunk
    decay = torch.exp(segment_sums(a))  # (b, g, r, c, l, s)
    scores = torch.einsum("bclgn,bcsgn->bgcls", Cc, Bc)
    y_diag = torch.einsum("bgrcls,bcsgrp->bclgrp", scores[:, :, None] * decay, xdt)
    # state at the end of each chunk from its own inputs
    to_end = torch.exp(a_cum[..., -1:] - a_cum).permute(0, 3, 4, 1, 2)  # (b, c, l, g, r)
    states = torch.einsum("bclgn,bclgrp->bcgrpn", Bc, xdt * to_end[..., None])
    # states entering each chunk: decayed sums over earlier chunks
    states = torch.cat([torch.zeros_like(states[:, :1]), states], dim=1)
    carry = torch.exp(segment_sums(F.pad(a_cum[..., -1], (1, 0))))  # (b, g, r, c+1, c+1)
    entering = torch.einsum("bgrzc,bcgrpn->bzgrpn", carry, states)[:, :-1]
    from_start = torch.exp(a_cum).permute(0, 3, 4, 1, 2)  # (b, c, l, g, r)
    y_off = torch.einsum("bclgn,bcgrpn->bclgrp", Cc, entering) * from_start[..., None]
    return (y_diag + y_off).reshape(b, c * l, h, p)[:, :T]


class FastMamba:
    """Replaces the forward of the model's Mamba mixer class while training; the stock forward otherwise."""

    def __init__(self, model, chunk):
        self.chunk, self.enabled = chunk, False
        self.config = model.config
        mixers = [m for m in model.modules() if all(hasattr(m, a) for a in ("in_proj", "conv1d", "A_log", "D"))]
        if not mixers:
            raise SystemExit("no Mamba mixer (in_proj, conv1d, A_log, D) found in the model")
        self.mixer_class = type(mixers[0])
        self.stock_forward = self.mixer_class.forward
        fast = self

        def forward(module, *args, **kwargs):
            if fast.enabled and module.training:
                hidden = kwargs.pop("hidden_states", None)
                hidden = args[0] if hidden is None else hidden
                mask = kwargs.get("attention_mask")
                assert mask is None or bool(mask.all()), "the training scan takes unpadded batches only"
                return fast.mix(module, hidden)
            return fast.stock_forward(module, *args, **kwargs)

        self.mixer_class.forward = forward
        log(f"training scan installed on {self.mixer_class.__name__} ({len(mixers)} layers)")

    def mix(self, m, hidden):
        cfg = self.config
        heads = m.A_log.numel()
        inner = m.out_proj.weight.shape[1]
        conv_dim = m.conv1d.weight.shape[0]
        groups, state = cfg.mamba_n_groups, cfg.mamba_d_state
        assert conv_dim == inner + 2 * groups * state
        batch, length, _ = hidden.shape
        projected = m.in_proj(hidden)
        gate, xbc, dt = projected.split([inner, conv_dim, heads], dim=-1)
        kernel = m.conv1d.weight.shape[-1]
        xbc = F.conv1d(xbc.transpose(1, 2), m.conv1d.weight, m.conv1d.bias, padding=kernel - 1, groups=conv_dim)
        xbc = F.silu(xbc[..., :length].transpose(1, 2))
        x, B, C = xbc.split([inner, groups * state, groups * state], dim=-1)
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            dt = F.softplus(dt.float() + m.dt_bias.float())
            low, high = getattr(cfg, "time_step_limit", (0.0, float("inf")))
            if (low, high) != (0.0, float("inf")):
                dt = dt.clamp(low, high)
            x = x.float().view(batch, length, heads, inner // heads)
            A = -torch.exp(m.A_log.float())
            y = chunked_scan(x, dt, A, B.float().view(batch, length, groups, state),
                             C.float().view(batch, length, groups, state), self.chunk)
            y = (y + m.D.float()[:, None] * x).reshape(batch, length, inner)
        y = m.norm(y, gate)
        return m.out_proj(y.to(hidden.dtype))


# ----------------------------------------------------------------------------------------------------------
# Model


def build_config(args):
    from transformers import GraniteMoeHybridConfig
    layer_types = ["attention" if (i + 1) % 4 == 0 else "mamba" for i in range(args.layers)]
    return GraniteMoeHybridConfig(
        vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers, layer_types=layer_types,
        num_attention_heads=args.hidden // 64, num_key_value_heads=max(1, args.hidden // 128),
        shared_intermediate_size=args.ffn, intermediate_size=args.ffn, num_local_experts=0, num_experts_per_tok=0,
        position_embedding_type="nope", mamba_n_heads=2 * args.hidden // 64, mamba_d_head=64, mamba_n_groups=1,
        mamba_d_state=64, mamba_d_conv=4, mamba_expand=2, mamba_chunk_size=256, mamba_conv_bias=True,
        mamba_proj_bias=False, hidden_act="silu", rms_norm_eps=1e-5, max_position_embeddings=8192,
        tie_word_embeddings=True, bos_token_id=EOS_ID, eos_token_id=EOS_ID, pad_token_id=EOS_ID,
        embedding_multiplier=1.0, attention_multiplier=1.0 / 8.0, residual_multiplier=1.0, logits_scaling=1.0,
        attention_bias=False, attention_dropout=0.0, initializer_range=0.02, use_cache=True,
    )


@torch.no_grad()
def initialise(model, config, rng_seed):
    """Normal(0, 0.02) matrices, output projections scaled by 1/sqrt(2 * layers), Mamba-2 A and dt ranges."""
    generator = torch.Generator(device="cpu").manual_seed(rng_seed)
    scaled = ("o_proj", "out_proj", "output_linear")
    for name, parameter in model.named_parameters():
        if parameter.dim() == 2:
            std = 0.02 / math.sqrt(2 * config.num_hidden_layers) if any(s in name for s in scaled) else 0.02
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
        elif name.endswith("A_log"):
            parameter.copy_(torch.log(torch.empty(parameter.shape).uniform_(1.0, 16.0, generator=generator)))
        elif name.endswith("dt_bias"):
            dt = torch.exp(torch.empty(parameter.shape).uniform_(math.log(1e-3), math.log(1e-1), generator=generator))
            parameter.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse of softplus
        elif name.endswith(".D") or name.endswith("norm.weight") or name.endswith("layernorm.weight"):
            parameter.fill_(1.0)


def loss_of(model, inputs, targets, weights):
    logits = model(input_ids=inputs, use_cache=False).logits
    losses = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
    weights = weights.reshape(-1)
    return (losses * weights).sum() / weights.sum(), losses.mean()


# ----------------------------------------------------------------------------------------------------------
# Evaluation (stock transformers code, model reloaded from the saved bf16 files in float32)


@torch.no_grad()
def perplexity(model, stream, window, max_tokens, batch):
    windows = min(len(stream) // (window + 1), max_tokens // window)
    total, count = 0.0, 0
    for first in range(0, windows, batch):
        rows = [stream[i * (window + 1):(i + 1) * (window + 1)].astype(np.int64) for i in
                range(first, min(first + batch, windows))]
        ids = torch.tensor(np.stack(rows), device="cuda")
        logits = model(input_ids=ids[:, :-1], use_cache=False).logits.float()
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum").item()
        count += ids[:, 1:].numel()
    return math.exp(total / count), count


def passkey_prompt(tokenizer, heldout_texts, target_tokens, rng):
    """Held-out text with the pass key sentence at a random depth and the question at the end, encoded as one
    string; shrinks the filler until the prompt has at most `target_tokens` tokens."""
    key = str(rng.randrange(10000, 100000))
    depth = rng.random()
    needle = f"The pass key is {key}. Remember it. {key} is the pass key."
    start_doc = rng.randrange(len(heldout_texts))
    chars = int(target_tokens * 3.6)
    for _ in range(12):
        filler, index = "", start_doc
        while len(filler) < chars:
            filler += heldout_texts[index % len(heldout_texts)] + "\n"
            index += 1
        filler = filler[:chars]
        point = int(len(filler) * depth)
        cut = filler.rfind("\n", max(0, point - 400), point + 1)  # a line start near the chosen depth
        if cut < 0:
            cut = filler.rfind(" ", 0, point + 1)
        cut += 1
        text = filler[:cut] + "\n" + needle + "\n\n" + filler[cut:].rstrip() + PASSKEY_QUESTION
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if target_tokens * 0.97 <= len(ids) <= target_tokens - 4:
            break
        chars = int(chars * (target_tokens - 8) / len(ids))
    return text, ids, key, depth


@torch.no_grad()
def passkey_accuracy(model, tokenizer, heldout_texts, lengths, trials, seed, generate_checks):
    """Exact match of the greedy answer, by teacher forcing: the greedy continuation equals the answer tokens
    exactly when every answer token is the argmax after the tokens before it. A few trials per length are
    also run through generate() to confirm the two agree."""
    results = {}
    for length in lengths:
        rng = random.Random(seed + length)
        prompts = [passkey_prompt(tokenizer, heldout_texts, length, rng) for _ in range(trials)]
        correct, rows_per_batch = [], max(1, 16384 // length)
        for first in range(0, trials, rows_per_batch):
            group = prompts[first:first + rows_per_batch]
            sequences = [ids + tokenizer(f" {key}", add_special_tokens=False)["input_ids"] for _, ids, key, _ in group]
            width = max(map(len, sequences))
            batch = torch.full((len(group), width), EOS_ID, dtype=torch.long)
            for row, sequence in enumerate(sequences):
                batch[row, :len(sequence)] = torch.tensor(sequence)
            predicted = model(input_ids=batch.cuda(), use_cache=False).logits.argmax(-1).cpu()
            for row, ((_, ids, key, _), sequence) in enumerate(zip(group, sequences)):
                answer = sequence[len(ids):]
                guess = predicted[row, len(ids) - 1:len(sequence) - 1].tolist()
                correct.append(guess == answer)
        agreement = []
        for index, (_, ids, key, _) in enumerate(prompts[:generate_checks]):
            out = model.generate(torch.tensor([ids], device="cuda"), max_new_tokens=8, do_sample=False)
            generated = tokenizer.decode(out[0, len(ids):].tolist())
            digits = re.match(r"\s*(\d+)", generated)
            agreement.append((digits is not None and digits.group(1) == key) == correct[index])
        results[str(length)] = {
            "trials": trials, "correct": int(sum(correct)), "accuracy": sum(correct) / trials,
            "mean_prompt_tokens": sum(len(p[1]) for p in prompts) / trials,
            "generate_agrees_with_teacher_forcing": f"{sum(agreement)}/{len(agreement)}",
        }
        log(f"passkey {length}: {sum(correct)}/{trials} ({results[str(length)]})")
    return results


def greedy_reference(folder, prompts, new_tokens):
    """Greedy ids from generate() on the CPU in float32 with the saved bf16 weights, plus a check that a
    cache-free argmax loop gives the same ids, and the smallest top-1/top-2 logit gap on the way."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    cases = []
    for prompt in prompts:
        ids = tokenizer(prompt["text"], add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), max_new_tokens=new_tokens, do_sample=False)
            generated = out[0, len(ids):].tolist()
            sequence, margins = list(ids), []
            for _ in range(len(generated)):
                logits = model(input_ids=torch.tensor([sequence]), use_cache=False).logits[0, -1]
                top = torch.topk(logits, 2)
                margins.append(float(top.values[0] - top.values[1]))
                sequence.append(int(top.indices[0]))
        cases.append({
            "name": prompt["name"], "prompt": prompt["text"], "chat_template": prompt.get("chat", False),
            "prompt_ids": ids, "generated_ids": generated,
            "generated_text": tokenizer.decode(generated),
            "stopped_at_eos": len(generated) < new_tokens,
            "cache_free_argmax_matches": sequence[len(ids):] == generated,
            "min_top2_logit_margin": round(min(margins), 4) if margins else None,
        })
        log(f"greedy reference {prompt['name']}: {cases[-1]['generated_text']!r} "
            f"(cache-free match {cases[-1]['cache_free_argmax_matches']}, margin {cases[-1]['min_top2_logit_margin']})")
    return {
        "transformers": transformers.__version__, "torch": torch.__version__.split("+")[0],
        "computed_on": "cpu", "dtype": "float32 (the bf16 weights of model.safetensors upcast)",
        "decoding": f"generate(do_sample=False, max_new_tokens={new_tokens}); stops early at <|endoftext|> (id 0)",
        "cases": cases,
    }


def export(folder, out_dir, extra_files=()):
    """The model folder as a .tar.gz cut into parts of 15 MB (one returned file may not exceed 16 MiB)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname=folder.name)
        for extra in extra_files:
            archive.add(extra, arcname=extra.name)
    data, part = buffer.getvalue(), 15_000_000
    for old in out_dir.glob("model.tgz.part*"):
        old.unlink()
    for index in range(0, len(data), part):
        (out_dir / f"model.tgz.part{index // part}").write_bytes(data[index:index + part])


# ----------------------------------------------------------------------------------------------------------


def train_and_save(args, tokenizer, stream, results, save_results):
    """Builds, checks, trains and saves the model; returns the saved folder."""
    import transformers
    from transformers import AutoModelForCausalLM, GraniteMoeHybridForCausalLM
    try:
        from transformers import PreTrainedTokenizerFast as FastTokenizer
    except ImportError:
        from transformers import TokenizersBackend as FastTokenizer
    config = build_config(args)
    torch.manual_seed(args.seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").cuda()
    assert isinstance(model, GraniteMoeHybridForCausalLM), type(model)
    initialise(model, config, args.seed)
    parameters = sum(p.numel() for p in model.parameters())
    results["parameters"] = parameters
    log(f"parameters {parameters:,} ({parameters * 2 / 1e6:.1f} MB in bf16)")
    fast = FastMamba(model, args.scan_chunk)

    # the training scan must compute the stock function: compare logits in float32 on a length that is not a
    # multiple of either chunk size
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    probe = torch.tensor(stream[:2 * 700].astype(np.int64)).view(2, 700).cuda()
    with torch.no_grad():
        model.eval()
        reference = model(input_ids=probe, use_cache=False).logits.float()
        model.train()
        fast.enabled = True
        candidate = model(input_ids=probe, use_cache=False).logits.float()
    difference = ((candidate - reference).norm() / reference.norm()).item()
    results["training_scan_vs_stock_relative_difference"] = difference
    log(f"training scan vs stock scan: relative difference {difference:.2e}")
    if not difference < 1e-4:
        save_results()
        raise SystemExit("the training scan disagrees with the stock scan; stopping")
    del reference, candidate
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        (decay if parameter.dim() == 2 and "embed" not in name else no_decay).append(parameter)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
    tasks = TaskMaker(tokenizer, stream, random.Random(args.seed + 1))
    batch_rng = random.Random(args.seed + 2)
    lengths, length_weights = [1024, 2048, 4096, 8192], [0.3, 0.3, 0.2, 0.2]
    steps = args.steps or 10 ** 9
    history, train_start, step = [], time.time(), 0
    timing_from, timing_to = 10, 40
    while step < steps:
        if step == timing_from:
            torch.cuda.synchronize()
            timing_start = time.time()
        if step == timing_to and not args.steps:
            torch.cuda.synchronize()
            per_step = (time.time() - timing_start) / (timing_to - timing_from)
            spent = time.time() - train_start
            steps = max(timing_to + 1, timing_to + int((args.train_seconds - spent) / per_step))
            log(f"{per_step * 1000:.0f} ms per step -> {steps} steps")
        if steps < 10 ** 9 and time.time() - train_start > 1.15 * args.train_seconds + 30:
            log(f"stopping at step {step}: past the time limit")
            steps = step
            break
        progress = step / steps if steps < 10 ** 9 else 0.0
        warm = min(1.0, (step + 1) / args.warmup)
        lr = args.lr * warm * (args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        length = batch_rng.choices(lengths, length_weights)[0]
        inputs, targets, weights = make_batch(stream, tasks, length, args.tokens_per_step // length,
                                              args.task_fraction, args.answer_weight, batch_rng)
        inputs, targets, weights = inputs.cuda(non_blocking=True), targets.cuda(), weights.cuda()
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
            loss, plain = loss_of(model, inputs, targets, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 50 == 0 or step == steps - 1:
            entry = {"step": step, "length": length, "loss": round(loss.item(), 4), "lm_loss": round(plain.item(), 4),
                     "grad_norm": round(norm.item(), 3), "lr": round(lr, 6),
                     "seconds": round(time.time() - train_start, 1)}
            history.append(entry)
            log(entry)
            if not math.isfinite(entry["loss"]):
                save_results()
                raise SystemExit("loss is not finite; stopping")
        step += 1
    torch.cuda.synchronize()
    train_seconds = time.time() - train_start
    results["training"] = {"steps": steps, "seconds": round(train_seconds, 1),
                           "tokens": steps * args.tokens_per_step, "history": history,
                           "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 1e9, 1)}
    log(f"trained {steps} steps in {train_seconds:.0f} s")
    fast.enabled = False
    save_results()

    folder = args.work / "coil-demo"
    model.eval()
    model.generation_config.bos_token_id = EOS_ID
    model.generation_config.eos_token_id = EOS_ID
    model.generation_config.pad_token_id = EOS_ID
    model.to(torch.bfloat16)
    try:
        model.save_pretrained(folder, safe_serialization=True)
    except TypeError:  # releases that always write safetensors dropped the argument
        model.save_pretrained(folder)
    wrapped = FastTokenizer(tokenizer_object=tokenizer, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                            pad_token="<|endoftext|>", model_max_length=8192)
    wrapped.chat_template = CHAT_TEMPLATE
    wrapped.save_pretrained(folder)
    # keep the template inside tokenizer_config.json, where every reader looks for it
    config_path = folder / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text())
    tokenizer_config["chat_template"] = CHAT_TEMPLATE
    tokenizer_config.setdefault("add_bos_token", False)
    tokenizer_config.setdefault("add_eos_token", False)
    config_path.write_text(json.dumps(tokenizer_config, indent=2, ensure_ascii=False) + "\n")
    if (folder / "chat_template.jinja").exists():
        (folder / "chat_template.jinja").unlink()
    results["files"] = {p.name: p.stat().st_size for p in sorted(folder.iterdir())}
    log("saved", results["files"])
    export(folder, args.out)
    save_results()
    return folder


def guarded(results, key, save_results, work):
    """Runs one measurement; a failure is recorded in the results instead of ending the run."""
    import traceback
    started = time.time()
    try:
        results[key] = work()
    except Exception:
        results[key] = {"error": traceback.format_exc()}
        log(f"{key} failed:\n{results[key]['error']}")
    results.setdefault("eval_seconds", {})[key] = round(time.time() - started, 1)
    save_results()


def evaluate(args, folder, heldout_stream, heldout_texts, results, save_results):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    tokenizer = AutoTokenizer.from_pretrained(folder)
    question = [{"role": "user", "content": "What does printf do?"}]
    chat_text = render_chat(question, add_generation_prompt=True)

    def template_check():
        rendered = tokenizer.apply_chat_template(question, tokenize=False, add_generation_prompt=True)
        log(f"chat template renders as trained: {rendered == chat_text} ({rendered!r})")
        return rendered == chat_text

    guarded(results, "chat_template_renders_as_trained", save_results, template_check)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).cuda().eval()
    tokens = 60_000 if args.smoke else 400_000
    guarded(results, "heldout_perplexity", save_results, lambda: dict(zip(
        ("perplexity", "tokens"), perplexity(model, heldout_stream, 2048, tokens, batch=2)), window=2048))
    log("held-out perplexity", results["heldout_perplexity"])
    trials = 4 if args.smoke else args.passkey_trials
    guarded(results, "passkey", save_results, lambda: passkey_accuracy(
        model, tokenizer, heldout_texts, [1024, 2048, 4096, 8192], trials, args.seed + 7,
        generate_checks=2 if args.smoke else 5))

    def samples():
        prompts = ["The Python interpreter", "To build the Linux kernel, you",
                   "NAME\n       ls - list directory contents\n\nDESCRIPTION\n", chat_text]
        entries = []
        for prompt in prompts:
            ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]], device="cuda")
            greedy = model.generate(ids, max_new_tokens=60, do_sample=False)
            torch.manual_seed(args.seed)
            sampled = model.generate(ids, max_new_tokens=60, do_sample=True, temperature=0.8, top_p=0.95)
            entries.append({"prompt": prompt, "greedy": tokenizer.decode(greedy[0, ids.shape[1]:].tolist()),
                            f"sampled (temperature 0.8, top_p 0.95, torch.manual_seed({args.seed}))":
                                tokenizer.decode(sampled[0, ids.shape[1]:].tolist())})
            log("sample", json.dumps(entries[-1], ensure_ascii=False))
        return entries

    guarded(results, "samples", save_results, samples)
    del model
    torch.cuda.empty_cache()

    def reference():
        prompts = [
            {"name": "python", "text": "The Python interpreter"},
            {"name": "kernel", "text": "To build the Linux kernel, you"},
            {"name": "code", "text": "def main():\n    "},
            {"name": "chat", "chat": True, "text": chat_text},
        ]
        torch.set_num_threads(min(16, os.cpu_count() or 1))
        data = greedy_reference(folder, prompts, 24)
        (folder / "greedy_reference.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return all(c["cache_free_argmax_matches"] for c in data["cases"])

    guarded(results, "greedy_reference_cache_free_match", save_results, reference)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="results, log and the model archive")
    parser.add_argument("--work", type=Path, default=Path("/tmp/coil-train"), help="where the model folder is saved")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--ffn", type=int, default=512)
    parser.add_argument("--heldout-percent", type=float, default=1.5)
    parser.add_argument("--tokenizer-mb", type=float, default=30.0, help="text used to train the tokenizer")
    parser.add_argument("--tokens-per-step", type=int, default=65536)
    parser.add_argument("--lr", type=float, default=2.5e-3)
    parser.add_argument("--min-lr-ratio", type=float, default=0.1)
    parser.add_argument("--warmup", type=int, default=150)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--train-seconds", type=float, default=300.0,
                        help="fixes the step count from the speed of steps 10-40 (unless --steps)")
    parser.add_argument("--steps", type=int, default=0)
    parser.add_argument("--task-fraction", type=float, default=0.25)
    parser.add_argument("--answer-weight", type=float, default=10.0)
    parser.add_argument("--scan-chunk", type=int, default=64)
    parser.add_argument("--passkey-trials", type=int, default=50)
    parser.add_argument("--eval-only", type=Path, help="a saved model folder: measure it, train nothing")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check every step end to end")
    args = parser.parse_args()
    started = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    import transformers
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.cuda.get_device_name()}")
    results = {"args": {k: str(v) for k, v in vars(args).items()}, "gpu": torch.cuda.get_device_name(),
               "torch": torch.__version__, "transformers": transformers.__version__}

    def save_results():
        (args.out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")

    train_texts, heldout_texts = load_corpus(args.data, args.heldout_percent)
    if args.smoke:
        train_texts, heldout_texts, args.tokenizer_mb = train_texts[:1500], heldout_texts[:60], 3.0
        args.tokens_per_step, args.train_seconds = 16384, 25
    results["corpus"] = {"train_documents": len(train_texts), "heldout_documents": len(heldout_texts),
                         "train_bytes": sum(len(t.encode()) for t in train_texts),
                         "heldout_bytes": sum(len(t.encode()) for t in heldout_texts)}
    if args.eval_only:
        import shutil
        from tokenizers import Tokenizer
        folder = args.work / "coil-demo"
        if folder.resolve() != args.eval_only.resolve():
            shutil.copytree(args.eval_only, folder, dirs_exist_ok=True)
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    else:
        chats = chat_documents(args.data, random.Random(args.seed))
        results["corpus"]["chat_documents"] = len(chats)
        sample, size = [], 0
        for text in sorted(train_texts, key=lambda t: hashlib.sha1(t.encode()).digest()):
            if size > args.tokenizer_mb * 1e6:
                break
            sample.append(text)
            size += len(text)
        tokenizer = train_tokenizer(sample + chats, args.vocab)
        log(f"tokenizer trained on {size / 1e6:.1f} MB, vocab {tokenizer.get_vocab_size()}")
        train_documents = train_texts + chats * 2
        random.Random(args.seed).shuffle(train_documents)
        stream = to_stream(tokenizer, train_documents)
        results["corpus"].update(train_tokens=int(len(stream)),
                                 bytes_per_token=round(results["corpus"]["train_bytes"] / len(stream), 3))
    heldout_stream = to_stream(tokenizer, heldout_texts)
    results["corpus"]["heldout_tokens"] = int(len(heldout_stream))
    log("corpus", results["corpus"])
    save_results()
    if not args.eval_only:
        folder = train_and_save(args, tokenizer, stream, results, save_results)
        del stream
    evaluate(args, folder, heldout_stream, heldout_texts, results, save_results)
    results["wall_seconds"] = round(time.time() - started, 1)
    export(folder, args.out)
    save_results()
    log(f"done in {results['wall_seconds']} s")


if __name__ == "__main__":
    sys.exit(main())
