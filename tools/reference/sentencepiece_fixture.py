#!/usr/bin/env python3
"""Make SentencePiece-style tokenizer fixtures with Hugging Face tokenizers and transformers.

A byte-fallback BPE ("▁" for a space, "<0xE6>" for a byte no piece holds) is trained on make_fixtures.py's
corpus and saved in two layouts:

    tokenizer_sentencepiece_llama2/        Llama 2's tokenizer.json layout: a Prepend("▁") + Replace normalizer,
                                           no pre-tokenizer, a Replace/ByteFallback/Fuse/Strip decoder
    tokenizer_sentencepiece_transformers/  the layout transformers' own LlamaTokenizer writes for that
                                           vocabulary and those merges (the library's current conversion)

each with expected.json, computed by transformers and tokenizers:
    encode:         ids of texts without and with special tokens, their decode and their spellings
    continuations:  a text's ids cut in two, prompt and answer: the answer's text is the whole's decode
                    with the prompt's decode taken off (skipping special tokens, and keeping them), and
                    the text tokenizers' DecodeStream gives for the answer after stepping through the
                    prompt (vLLM's incremental detokenizer)

Usage:
    python3 sentencepiece_fixture.py --dir /tmp/sp [--tar /path/sp.tar.gz]
"""
import argparse
import json
import os
import sys
import tarfile
import traceback

import tokenizers
import transformers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import CORPUS  # noqa: E402

SPECIALS = ["<unk>", "<s>", "</s>"]
BYTES = [f"<0x{b:02X}>" for b in range(256)]
VOCAB_SIZE = 384

TEXTS = [
    "New York",
    "The quick brown fox jumps over the lazy dog.",
    "café 日本 😀 naïve",
    "  two  spaces",
    "line\nbreak\ttab",
    '{"a": [1, "x y"], "b": null}',
    " leading space",
    "trailing space ",
    "Genève 中文 Zürich",
]


def train():
    """The byte-fallback BPE: trained without the byte tokens, which then take ids 3-258 of the vocabulary
    as in Llama's (plain vocabulary entries, not added tokens: only <unk>, <s> and </s> are special)."""
    trained = Tokenizer(models.BPE(unk_token="<unk>"))
    trained.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trained.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE - len(BYTES), special_tokens=SPECIALS, limit_alphabet=64,
                                  show_progress=False)
    trained.train_from_iterator(CORPUS, trainer=trainer)
    model = json.loads(trained.to_str())["model"]
    vocab = {token: i for i, token in enumerate(SPECIALS + BYTES)}
    for token, i in sorted(model["vocab"].items(), key=lambda entry: entry[1]):
        if token not in vocab:
            vocab[token] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.add_special_tokens(SPECIALS)
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                           decoders.Strip(" ", 1, 0)])
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                             special_tokens=[("<s>", 1)])
    return tokenizer, vocab, merges


def save_llama2(tokenizer, directory):
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>",
                                      unk_token="<unk>", clean_up_tokenization_spaces=False)
    os.makedirs(directory, exist_ok=True)
    wrapped.save_pretrained(directory)


def save_transformers(vocab, merges, directory):
    llama = transformers.LlamaTokenizer(vocab=vocab, merges=merges)
    os.makedirs(directory, exist_ok=True)
    llama.save_pretrained(directory)


def stream_text(hf, prompt, answer, skip):
    """The answer's text from tokenizers' DecodeStream stepped through the prompt first, as vLLM does."""
    stream = tokenizers.decoders.DecodeStream(skip_special_tokens=skip)
    backend = hf.backend_tokenizer
    for token in prompt:
        stream.step(backend, token)
    pieces = [stream.step(backend, token) for token in answer]
    return "".join(piece for piece in pieces if piece is not None)


def expected(directory):
    hf = transformers.AutoTokenizer.from_pretrained(directory)
    encode = []
    for text in TEXTS:
        ids = hf.encode(text, add_special_tokens=False)
        encode.append({"text": text, "ids": ids, "ids_with_special_tokens": hf.encode(text, add_special_tokens=True),
                       "decoded": hf.decode(ids, skip_special_tokens=False),
                       "tokens": hf.convert_ids_to_tokens(ids)})
    continuations = []
    for text in TEXTS:
        whole = hf.encode(text, add_special_tokens=True)
        for cut in range(1, len(whole)):
            prompt, answer = whole[:cut], whole[cut:]
            entry = {"prompt": prompt, "answer": answer}
            for skip, name in ((True, "skipping"), (False, "keeping")):
                prompt_text = hf.decode(prompt, skip_special_tokens=skip)
                whole_text = hf.decode(whole, skip_special_tokens=skip)
                entry[name] = whole_text[len(prompt_text):] if whole_text.startswith(prompt_text) else None
                try:
                    entry[name + "_stream"] = stream_text(hf, prompt, answer, skip)
                except Exception:  # an older tokenizers without DecodeStream
                    entry[name + "_stream"] = None
            continuations.append(entry)
    with open(os.path.join(directory, "tokenizer.json"), encoding="utf-8") as f:
        layout = json.load(f)
    print(directory, json.dumps({k: layout.get(k) for k in ("normalizer", "pre_tokenizer", "decoder")},
                                ensure_ascii=False))
    print("  added tokens:", [added["content"] for added in layout["added_tokens"]])
    agree = sum(1 for c in continuations if c["skipping"] == c["skipping_stream"])
    print(f"  {len(continuations)} continuations; DecodeStream equals decode-and-take-off in {agree}")
    with open(os.path.join(directory, "expected.json"), "w", encoding="utf-8") as f:
        json.dump({"versions": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__},
                   "encode": encode, "continuations": continuations}, f, ensure_ascii=False, indent=1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--tar")
    args = parser.parse_args()
    tokenizer, vocab, merges = train()
    print("vocabulary:", tokenizer.get_vocab_size())
    made = []
    for name, save in (("tokenizer_sentencepiece_llama2", lambda directory: save_llama2(tokenizer, directory)),
                       ("tokenizer_sentencepiece_transformers",
                        lambda directory: save_transformers(vocab, merges, directory))):
        directory = os.path.join(args.dir, name)
        try:
            save(directory)
            expected(directory)
            made.append(name)
        except Exception:
            print(f"{name}: failed", file=sys.stderr)
            traceback.print_exc()
    if args.tar:
        with tarfile.open(args.tar, "w:gz") as tar:
            for name in made:
                tar.add(os.path.join(args.dir, name), arcname=name)
    if len(made) < 2:
        sys.exit(1)


if __name__ == "__main__":
    main()
