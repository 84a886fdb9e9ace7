#!/usr/bin/env python3
"""Make Coil's reference fixtures with Hugging Face transformers and PyTorch (float32, CPU, deterministic).

Writes a fixture tree:

    tokenizer/                 byte-level BPE tokenizer (tokenizer.json, tokenizer_config.json) + expected.json
    <model>/                   a complete HF model folder (config.json, safetensors, tokenizer files)
                               + expected.json with prefill logits, cached decode logits and greedy generations

and, with --tar, packs the whole tree into one .tar.gz (the GPU machine returns few files).

Usage:
    python3 make_fixtures.py --dir /tmp/fixtures [--tar /path/fixtures.tar.gz] [--only mamba2,bamba]

See README.md beside this file for what each fixture exercises.
"""
import argparse
import json
import os
import shutil
import sys
import tarfile
import time

import torch
import transformers
import tokenizers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    BambaConfig,
    GenerationConfig,
    GraniteMoeHybridConfig,
    Mamba2Config,
    NemotronHConfig,
    PreTrainedTokenizerFast,
)

VOCAB_SIZE = 384
END_OF_TEXT, START, END = "<|endoftext|>", "<|start|>", "<|end|>"
SPECIAL_ID = 0  # <|endoftext|>: bos = eos = pad for every model
PROMPT_LENGTHS = (7, 9, 13)  # chunk size 4: longer than a chunk and not a multiple of it
DECODE_STEPS = 4
GREEDY_NEW_TOKENS = 8
GREEDY_PROMPTS = ([5, 17, 42, 99, 130, 7], [250, 3, 3, 301, 88, 12, 64, 200, 9, 111])

CHAT_TEMPLATE = (
    "{% for m in messages %}<|start|>{{ m['role'] }}\n{{ m['content'] | trim }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|start|>assistant\n{% endif %}"
)

# Training text for the tokenizer: English plus accents, CJK and emoji so that multi-byte merges exist.
CORPUS = [
    "The quick brown fox jumps over the lazy dog. The dog was not amused, and the fox ran into the forest.",
    "In the beginning there was a small engine that read weights from files and turned numbers into words.",
    "State space models keep a running summary of the past; attention looks back at every token it has seen.",
    "Hybrid models mix both: most layers are recurrent, and a few layers attend to the whole context.",
    "She said: \"Let's meet at 10:30 on 2024-05-17, room 42.\" He answered, 'Fine, see you then!'",
    "Numbers like 3.14159, 2718, 1000000 and 0.001 appear in text, as do lists: one, two, three.",
    "Un café au lait, s'il vous plaît. La naïveté du garçon était touchante; l'été à Genève fut doux.",
    "Über die Brücke gehen Mädchen und Jungen; señor Muñoz habló con João en São Paulo.",
    "日本語のテキストは空白で区切られません。東京は日本の首都です。今日はいい天気ですね。",
    "中文文本也没有空格。我们今天学习语言模型。",
    "한국어 문장도 있습니다. 안녕하세요!",
    "Emoji travel well: 👋🌍 🚀✨ 😀😃 🎉 — hello world 👋 and goodbye 🌍.",
    "    Indented code: def add(a, b):\n        return a + b\n\nprint(add(2, 3))\n",
    "Tabs\tand\tnewlines\nare\nwhitespace too.\n\n\nThree blank lines above.",
    "the the the and and of of to to in in is is it it that that was was for for on on",
    "hello hello world world engine engine token token model model layer layer state state",
]

ENCODE_TEXTS = [
    "Hello world",
    "   leading spaces and  double  spaces",
    "line one\nline two\n\nline four\n",
    "Numbers 12345 and 3.14 and 2024-05-17",
    "café naïve",
    "日本語のテキスト",
    "👋🌍",
    "Mixed: café 日本 👋 end.",
    "before<|endoftext|>after <|start|>user",
]

CHATS = [
    ([{"role": "system", "content": "You are a helpful engine."},
      {"role": "user", "content": "  Hello there!  \n"}], True),
    ([{"role": "user", "content": "What is 2+2?"},
      {"role": "assistant", "content": "\n4\n"},
      {"role": "user", "content": "Thanks 👋"}], True),
    ([{"role": "user", "content": "café"},
      {"role": "assistant", "content": "日本語"}], False),
]


def log(message):
    print(message, flush=True)


# ----------------------------------------------------------------------------------------------------
# Tokenizer


def make_tokenizer(directory):
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[END_OF_TEXT, START, END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    if tokenizer.get_vocab_size() != VOCAB_SIZE:
        raise SystemExit(f"tokenizer vocab is {tokenizer.get_vocab_size()}, wanted {VOCAB_SIZE}: grow CORPUS")
    for text, wanted in ((END_OF_TEXT, 0), (START, 1), (END, 2)):
        if tokenizer.token_to_id(text) != wanted:
            raise SystemExit(f"special token {text} got id {tokenizer.token_to_id(text)}, wanted {wanted}")

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
        additional_special_tokens=[START, END],
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
    )
    fast.chat_template = CHAT_TEMPLATE
    os.makedirs(directory, exist_ok=True)
    # chat_template inside tokenizer_config.json (the layout of most published checkpoints)
    fast.save_pretrained(directory, save_jinja_files=False)

    reloaded = PreTrainedTokenizerFast.from_pretrained(directory)
    encode = []
    for text in ENCODE_TEXTS:
        ids = reloaded.encode(text, add_special_tokens=False)
        if ids != tokenizer.encode(text, add_special_tokens=False).ids:
            raise SystemExit(f"wrapped and raw tokenizers disagree on {text!r}")
        encode.append({"text": text, "add_special_tokens": False, "ids": ids})

    decode = []
    hello = reloaded.encode("Hello world", add_special_tokens=False)
    mixed = reloaded.encode("Mixed: café 日本 👋 end.", add_special_tokens=False)
    wave = reloaded.encode("👋", add_special_tokens=False)
    with_specials = [1] + reloaded.encode("user\nhi", add_special_tokens=False) + [2, 0]
    for ids, skip in ((hello, False), (mixed, False), (with_specials, False), (with_specials, True),
                      (wave[:1], False)):
        decode.append({"ids": ids, "skip_special_tokens": skip,
                       "text": reloaded.decode(ids, skip_special_tokens=skip)})

    chat = []
    for messages, add_generation_prompt in CHATS:
        text = reloaded.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
        chat.append({"messages": messages, "add_generation_prompt": add_generation_prompt, "text": text,
                     "ids": reloaded.encode(text, add_special_tokens=False)})

    expected = {"vocab_size": VOCAB_SIZE, "encode": encode, "decode": decode, "chat": chat}
    write_json(os.path.join(directory, "expected.json"), expected)
    for case in encode:
        log(f"  encode {case['text']!r} -> {len(case['ids'])} ids")
    for case in decode:
        log(f"  decode {case['ids'][:6]}... skip={case['skip_special_tokens']} -> {case['text']!r}")
    log(f"  chat[0] text {chat[0]['text']!r}")
    return reloaded


# ----------------------------------------------------------------------------------------------------
# Models

COMMON = dict(vocab_size=VOCAB_SIZE, pad_token_id=SPECIAL_ID, bos_token_id=SPECIAL_ID, eos_token_id=SPECIAL_ID)

GRANITE = dict(
    hidden_size=32, num_hidden_layers=4, layer_types=["mamba", "attention", "mamba", "attention"],
    num_attention_heads=4, num_key_value_heads=2,
    mamba_n_heads=8, mamba_d_head=8, mamba_n_groups=2, mamba_d_state=8, mamba_d_conv=4, mamba_expand=2,
    mamba_chunk_size=4, num_local_experts=0, num_experts_per_tok=0, shared_intermediate_size=48,
    embedding_multiplier=12.0, residual_multiplier=0.22, attention_multiplier=0.125, logits_scaling=3.0,
    rms_norm_eps=1e-5, max_position_embeddings=256,
)

NEMOTRON_MOE = dict(
    hidden_size=32, num_attention_heads=4, num_key_value_heads=2, head_dim=8, intermediate_size=48,
    mamba_num_heads=8, mamba_head_dim=8, n_groups=2, ssm_state_size=8, conv_kernel=4, expand=2, chunk_size=4,
    time_step_min=0.001, layer_norm_epsilon=1e-5, n_routed_experts=8, num_experts_per_tok=3,
    moe_shared_expert_intermediate_size=24, n_shared_experts=1, n_group=2, topk_group=1, norm_topk_prob=True,
    routed_scaling_factor=2.5, max_position_embeddings=256, tie_word_embeddings=False,
)


def config_for(name):
    if name == "mamba2":
        return Mamba2Config(num_heads=4, head_dim=8, hidden_size=16, state_size=8, num_hidden_layers=2,
                            n_groups=2, chunk_size=4, expand=2, conv_kernel=4, tie_word_embeddings=False,
                            **COMMON)
    if name == "granitemoehybrid":
        return GraniteMoeHybridConfig(position_embedding_type="nope", tie_word_embeddings=True, **GRANITE, **COMMON)
    if name == "granitemoehybrid_rope":
        return GraniteMoeHybridConfig(position_embedding_type="rope",
                                      rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                                      tie_word_embeddings=False, **GRANITE, **COMMON)
    if name == "granitemoehybrid_moe":
        # routed experts (granite-4.0-h-tiny's layout): 8 experts of width 16, 3 a token, beside the shared MLP
        moe = dict(GRANITE, num_local_experts=8, num_experts_per_tok=3, intermediate_size=16)
        return GraniteMoeHybridConfig(position_embedding_type="nope", tie_word_embeddings=True, **moe, **COMMON)
    if name == "bamba":
        return BambaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, attn_layer_indices=[1],
                           num_attention_heads=4, num_key_value_heads=2, mamba_n_heads=8, mamba_d_head=8,
                           mamba_n_groups=2, mamba_d_state=8, mamba_d_conv=4, mamba_expand=2, mamba_chunk_size=4,
                           rms_norm_eps=1e-5, max_position_embeddings=256, tie_word_embeddings=False, **COMMON)
    if name == "nemotron_h":
        # attention head_dim 12 differs from hidden/heads (8); Mamba inner 8*6 = 48 differs from expand*hidden (64)
        return NemotronHConfig(hidden_size=32, layers_block_type=["mamba", "mlp", "attention", "mlp", "mamba"],
                               num_attention_heads=4, num_key_value_heads=2, head_dim=12, intermediate_size=48,
                               mamba_num_heads=8, mamba_head_dim=6, n_groups=2, ssm_state_size=8, conv_kernel=4,
                               expand=2, chunk_size=4, time_step_min=0.001, layer_norm_epsilon=1e-5,
                               max_position_embeddings=256, tie_word_embeddings=False, **COMMON)
    if name == "nemotron_h_moe":
        # routed experts (Nemotron-3-Nano's layout): 8 squared-ReLU experts of width 16 in 2 groups of 4, the best
        # group's 3 best experts a token (sigmoid scores + correction bias), normalised and scaled by 2.5, beside a
        # shared expert of width 24; an MLP block and an attention block between them
        return NemotronHConfig(layers_block_type=["mamba", "moe", "attention", "mlp", "mamba", "moe"],
                               moe_intermediate_size=16, moe_latent_size=None, **NEMOTRON_MOE, **COMMON)
    if name == "nemotron_h_latent":
        # the nemotron_h_moe shape with its routed experts behind a latent projection (Nemotron-3-Super's
        # layout): fc1_latent_proj takes the normed rows from 32 to 16, the experts work at 16, and
        # fc2_latent_proj takes their weighted sum back to 32; the router and the shared expert read 32
        return NemotronHConfig(layers_block_type=["mamba", "moe", "attention", "moe", "mamba", "moe"],
                               moe_intermediate_size=24, moe_latent_size=16, **NEMOTRON_MOE, **COMMON)
    raise ValueError(name)


SEEDS = {"mamba2": 11, "granitemoehybrid": 12, "granitemoehybrid_rope": 13, "bamba": 14, "nemotron_h": 15,
         "granitemoehybrid_moe": 16, "nemotron_h_moe": 17, "nemotron_h_latent": 18}


def randomise(model, name, generator):
    """Draw every parameter from explicit distributions (HF's init leaves A_log/D/dt_bias/norms at constants
    and gives near-flat logits at these sizes)."""

    def uniform(shape, low, high):
        return torch.rand(shape, generator=generator) * (high - low) + low

    def normal(shape, std):
        return torch.randn(shape, generator=generator) * std

    mamba_layers_seen = 0
    granite = name.startswith("granitemoehybrid")
    with torch.no_grad():
        for parameter_name, parameter in model.named_parameters():  # tied weights appear once
            leaf = parameter_name.rsplit(".", 1)[-1]
            shape = parameter.shape
            if leaf == "e_score_correction_bias":
                value = uniform(shape, 0.0, 0.2)
            elif leaf == "A_log":
                value = uniform(shape, -1.0, 1.5)
            elif leaf == "D":
                value = uniform(shape, -1.0, 1.0)
            elif leaf == "dt_bias":
                value = uniform(shape, -3.0, 0.5)
                if name == "nemotron_h" and mamba_layers_seen == 0:
                    # softplus(dt + dt_bias) < time_step_min for these heads: prefill clamps, decode does not
                    value[: shape[0] // 2] = -8.0
                mamba_layers_seen += 1
            elif granite and model.config.tie_word_embeddings and parameter_name == "model.norm.weight":
                value = uniform(shape, 6.0, 12.0)  # small tied embeddings: widen the logits
            elif parameter.dim() == 1 and "norm" in parameter_name:
                value = uniform(shape, 0.5, 1.5)
            elif parameter.dim() == 1:  # biases (conv1d)
                value = normal(shape, 0.2)
            elif "conv1d" in parameter_name:  # [channels, 1, kernel]
                value = normal(shape, 0.5)
            elif "embed" in parameter_name:
                # Granite multiplies embeddings by 12: keep them from drowning the residual branches
                value = normal(shape, 0.02 if granite else 1.0)
            elif parameter_name.startswith("lm_head"):
                value = normal(shape, 3.0 / shape[-1] ** 0.5)
            elif granite and leaf == "weight" and any(
                    part in parameter_name for part in ("out_proj", "o_proj", "output_linear")):
                # branch outputs are scaled by residual_multiplier (0.22) against 12x embeddings; with tied
                # embeddings small branches make every greedy step repeat the last token
                value = normal(shape, 3.0 / shape[-1] ** 0.5)
            else:  # projections [out, in]
                value = normal(shape, 1.0 / shape[-1] ** 0.5)
            parameter.copy_(value.to(parameter.dtype))
        for buffer_name, buffer in model.named_buffers():
            if buffer_name.endswith("e_score_correction_bias"):
                # positive, so that an expert of a group left out (score 0.0) is never chosen over one kept
                buffer.copy_(uniform(buffer.shape, 0.0, 0.2).to(buffer.dtype))


def build_model(name):
    torch.manual_seed(SEEDS[name])
    config = config_for(name)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    generator = torch.Generator().manual_seed(SEEDS[name])
    randomise(model, name, generator)
    return model.eval()


def is_mamba2(model):
    return type(model).__name__ == "Mamba2ForCausalLM"


def forward(model, ids, cache=None, start=0):
    """One forward pass with the cache; explicit positions for the attention models (Bamba builds them
    without the cache offset otherwise)."""
    input_ids = torch.tensor([ids], dtype=torch.long)
    if is_mamba2(model):
        output = model(input_ids, cache_params=cache, use_cache=True)
        return output.logits[0].float(), output.cache_params
    positions = torch.arange(start, start + len(ids), dtype=torch.long).unsqueeze(0)
    output = model(input_ids, past_key_values=cache, position_ids=positions, use_cache=True)
    return output.logits[0].float(), output.past_key_values


def full_logits(model, ids):
    input_ids = torch.tensor([ids], dtype=torch.long)
    if is_mamba2(model):
        return model(input_ids, use_cache=False).logits[0].float()
    positions = torch.arange(len(ids), dtype=torch.long).unsqueeze(0)
    return model(input_ids, position_ids=positions, use_cache=False).logits[0].float()


def f32(values):
    """Floats with 9 significant digits: enough to read back the exact float32."""
    return [float(f"{v:.9g}") for v in values]


def top2_gaps(logits):
    top = torch.topk(logits, 2, dim=-1).values
    return (top[..., 0] - top[..., 1]).flatten()


def expectations(model, name, stats):
    generator = torch.Generator().manual_seed(1000 + SEEDS.get(name.split("_bf16")[0].split("_sharded")[0], 0))
    cases, gaps, worst_cached = [], [], 0.0
    with torch.no_grad():
        for length in PROMPT_LENGTHS:
            prompt = torch.randint(1, VOCAB_SIZE, (length,), generator=generator).tolist()
            prefill, cache = forward(model, prompt)
            uncached = full_logits(model, prompt)
            prefill_difference = (prefill - uncached).abs().max().item()
            decode_ids, decode_logits = [], []
            token = int(prefill[-1].argmax())
            for step in range(DECODE_STEPS):
                decode_ids.append(token)
                logits, cache = forward(model, [token], cache, start=length + step)
                decode_logits.append(logits[-1])
                token = int(logits[-1].argmax())
            decode_logits = torch.stack(decode_logits)
            reference = full_logits(model, prompt + decode_ids)[length:]
            cached_difference = (decode_logits - reference).abs().max().item()
            worst_cached = max(worst_cached, cached_difference)
            gaps.append(top2_gaps(prefill))
            gaps.append(top2_gaps(decode_logits))
            log(f"  T={length}: prefill cached-vs-uncached {prefill_difference:.3g}, "
                f"cached decode vs full forward {cached_difference:.3g}, decode ids {decode_ids}")
            cases.append({"prompt_ids": prompt,
                          "prefill_logits": [f32(row) for row in prefill.tolist()],
                          "decode_ids": decode_ids,
                          "decode_logits": [f32(row) for row in decode_logits.tolist()]})

        greedy = []
        settings = GenerationConfig(do_sample=False, max_new_tokens=GREEDY_NEW_TOKENS, min_new_tokens=0,
                                    eos_token_id=None, pad_token_id=SPECIAL_ID, bos_token_id=SPECIAL_ID,
                                    use_cache=True)
        for prompt in GREEDY_PROMPTS:
            input_ids = torch.tensor([prompt], dtype=torch.long)
            output = model.generate(input_ids, attention_mask=torch.ones_like(input_ids),
                                    generation_config=settings)
            generated = output[0, len(prompt):].tolist()
            # the same greedy run without any cache, as a check on generate's positions and cache handling
            manual = list(prompt)
            for _ in range(GREEDY_NEW_TOKENS):
                manual.append(int(full_logits(model, manual)[-1].argmax()))
            agrees = manual[len(prompt):] == generated
            log(f"  greedy {prompt} -> {generated}" + ("" if agrees else f"  (uncached greedy: {manual[len(prompt):]})"))
            greedy.append({"prompt_ids": prompt, "generated_ids": generated})

    if name == "nemotron_h":
        stats["cached_decode_vs_full_without_clamp"] = difference_without_clamp(model, cases[0])
    gaps = torch.cat(gaps)
    stats.update(cached_decode_vs_full=worst_cached, top2_gap_min=gaps.min().item(),
                 top2_gap_median=gaps.median().item(), top2_gaps_below_0_001=int((gaps < 1e-3).sum()))
    return {"architecture": type(model).__name__, "transformers": transformers.__version__,
            "torch": torch.__version__, "dtype_of_compute": "float32",
            "decode_steps": DECODE_STEPS,
            "cases": cases,
            "greedy_settings": {"do_sample": False, "max_new_tokens": GREEDY_NEW_TOKENS, "stop_on_eos": False},
            "greedy": greedy}


def difference_without_clamp(model, case):
    """Re-run one case with the prefill dt clamp lifted: cached decode and full forward should then agree,
    which shows that the clamp alone separates them."""
    mixers = [m for m in model.modules() if hasattr(m, "time_step_limit")]
    saved = [m.time_step_limit for m in mixers]
    for mixer in mixers:
        mixer.time_step_limit = (0.0, float("inf"))
    try:
        with torch.no_grad():
            prompt, decode_ids = case["prompt_ids"], case["decode_ids"]
            _, cache = forward(model, prompt)
            rows = []
            for step, token in enumerate(decode_ids):
                logits, cache = forward(model, [token], cache, start=len(prompt) + step)
                rows.append(logits[-1])
            reference = full_logits(model, prompt + decode_ids)[len(prompt):]
            difference = (torch.stack(rows) - reference).abs().max().item()
    finally:
        for mixer, limit in zip(mixers, saved):
            mixer.time_step_limit = limit
    log(f"  without the time_step_min clamp: cached decode vs full forward {difference:.3g} "
        f"({len(mixers)} mixers)")
    return difference


def copy_tokenizer(tokenizer_directory, model_directory):
    for file_name in sorted(os.listdir(tokenizer_directory)):
        if file_name != "expected.json":
            shutil.copy(os.path.join(tokenizer_directory, file_name), model_directory)


def check_same_parameters(original, reloaded, label):
    loaded = dict(reloaded.named_parameters())
    loaded.update(reloaded.named_buffers())
    worst = 0.0
    saved = list(original.named_parameters())
    saved += [(n, b) for n, b in original.named_buffers() if n.endswith("e_score_correction_bias")]
    for parameter_name, parameter in saved:
        other = loaded[parameter_name]
        worst = max(worst, (parameter.detach().float() - other.detach().float()).abs().max().item())
    if worst != 0.0:
        raise SystemExit(f"{label}: reloaded parameters differ from saved ones by {worst}")


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, ensure_ascii=False, separators=(",", ":"))
        handle.write("\n")


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())


def save_and_reload(model, directory, tokenizer_directory, **save_options):
    model.save_pretrained(directory, safe_serialization=True, **save_options)
    copy_tokenizer(tokenizer_directory, directory)
    reloaded = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    return reloaded


def make_models(root, tokenizer_directory, only):
    summary = {}
    names = ["mamba2", "granitemoehybrid", "granitemoehybrid_rope", "granitemoehybrid_moe", "bamba", "nemotron_h",
             "nemotron_h_moe", "nemotron_h_latent"]
    for name in names:
        wanted_variants = [n for n in (name, name + "_bf16", name + "_sharded") if n in only]
        if not wanted_variants:
            continue
        started = time.time()
        log(f"== {name}")
        model = build_model(name)
        stats = {"parameters": parameter_count(model)}
        directory = os.path.join(root, name)
        if name in only:
            reloaded = save_and_reload(model, directory, tokenizer_directory)
            check_same_parameters(model, reloaded, name)
            expected = expectations(reloaded, name, stats)
            write_json(os.path.join(directory, "expected.json"), expected)
            summary[name] = stats
            log(f"  {name}: {stats}  ({time.time() - started:.1f}s)")
        if name + "_sharded" in only:
            sharded = os.path.join(root, name + "_sharded")
            reloaded = save_and_reload(model, sharded, tokenizer_directory, max_shard_size="40KB")
            check_same_parameters(model, reloaded, name + "_sharded")
            shards = [f for f in os.listdir(sharded) if f.endswith(".safetensors")]
            if len(shards) < 2 or not os.path.exists(os.path.join(sharded, "model.safetensors.index.json")):
                raise SystemExit(f"{sharded}: expected several shards and an index, found {shards}")
            sharded_stats = {"parameters": parameter_count(model), "shards": len(shards)}
            write_json(os.path.join(sharded, "expected.json"), expectations(reloaded, name + "_sharded", sharded_stats))
            summary[name + "_sharded"] = sharded_stats
            log(f"  {name}_sharded: {sharded_stats}")
        if name + "_bf16" in only:
            bf16 = os.path.join(root, name + "_bf16")
            half = build_model(name).to(torch.bfloat16)
            half.config.dtype = torch.bfloat16
            half.save_pretrained(bf16, safe_serialization=True)
            copy_tokenizer(tokenizer_directory, bf16)
            # bf16-rounded weights, float32 compute
            reloaded = AutoModelForCausalLM.from_pretrained(bf16, dtype=torch.bfloat16).float().eval()
            check_same_parameters(half, reloaded, name + "_bf16")
            bf16_stats = {"parameters": parameter_count(half)}
            expected = expectations(reloaded, name + "_bf16", bf16_stats)
            expected["dtype_on_disk"] = "bfloat16"
            write_json(os.path.join(bf16, "expected.json"), expected)
            summary[name + "_bf16"] = bf16_stats
            log(f"  {name}_bf16: {bf16_stats}")
    return summary


ALL = ["tokenizer", "mamba2", "granitemoehybrid", "granitemoehybrid_rope", "granitemoehybrid_moe", "bamba",
       "nemotron_h", "nemotron_h_moe", "nemotron_h_latent", "granitemoehybrid_bf16", "granitemoehybrid_sharded"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True, help="fixture tree to write (emptied first)")
    parser.add_argument("--tar", help="also pack the tree into this .tar.gz")
    parser.add_argument("--only", default=",".join(ALL), help="comma-separated subset of " + ",".join(ALL))
    arguments = parser.parse_args()
    only = set(arguments.only.split(","))

    transformers.utils.logging.disable_progress_bar()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    log(f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}, "
        f"tokenizers {tokenizers.__version__}")

    root = arguments.dir
    if os.path.exists(root):
        shutil.rmtree(root)
    os.makedirs(root)
    tokenizer_directory = os.path.join(root, "tokenizer")
    log("== tokenizer")
    make_tokenizer(tokenizer_directory)
    summary = make_models(root, tokenizer_directory, only)
    write_json(os.path.join(root, "versions.json"),
               {"python": sys.version.split()[0], "torch": torch.__version__,
                "transformers": transformers.__version__, "tokenizers": tokenizers.__version__})

    log("== summary")
    for name, stats in summary.items():
        log(f"  {name}: " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in stats.items()))
    if arguments.tar:
        with tarfile.open(arguments.tar, "w:gz") as archive:
            archive.add(root, arcname="fixtures")
        log(f"packed {arguments.tar}: {os.path.getsize(arguments.tar)} bytes")


if __name__ == "__main__":
    main()
