"""Writes tokenizer.json and tokenizer_config.json: a hand-made SentencePiece-style BPE (Llama 2's and
Mistral's layout in tokenizers' JSON) small enough to reason about.

A space is spelled "▁" (the normalizer prepends one and replaces each space); a character no piece holds
is spelled by its UTF-8 bytes, "<0xE6>" and so on (byte fallback). The decoder turns "▁" back into a
space and strips one leading space from the whole text, so a token "▁York" decodes alone to "York" and
after other tokens to " York".

Ids: 0-2 <unk>, <s>, </s>; 3-258 the byte tokens <0x00>-<0xFF>; then "▁", the printable ASCII characters,
é and 本 (日 has no piece: it goes in bytes); then one id per merge, in rank order, building the words
below letter by letter, with and without "▁". The post-processor prepends <s> when special tokens are
added. Run: python3 generate.py
"""
import json

# 384 ids in all, the vocabulary of the test models (fixtures/*/config.json), so that they can run on it.
WORDS = ["▁New", "New", "▁York", "York", "▁the", "the", "▁yes", "yes", "▁{", "▁\"", "▁café"]


def main():
    specials = ["<unk>", "<s>", "</s>"]
    vocab = {s: i for i, s in enumerate(specials)}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for c in ["▁"] + [chr(c) for c in range(0x21, 0x7F)] + ["é", "本"]:
        vocab[c] = len(vocab)
    merges = []
    for word in WORDS:
        for k in range(1, len(word)):
            left, right = word[:k], word[k]
            if left + right not in vocab:
                merges.append(left + " " + right)
                vocab[left + right] = len(vocab)
    added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, s in enumerate(specials)]
    start = {"SpecialToken": {"id": "<s>", "type_id": 0}}
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [start, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [start, {"Sequence": {"id": "A", "type_id": 0}}, start, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }
    with open("tokenizer.json", "w", encoding="utf-8") as f:
        json.dump(tokenizer, f, ensure_ascii=False, indent=1)
    config = {
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True,
        "clean_up_tokenization_spaces": False, "legacy": True, "model_max_length": 64,
        "chat_template": "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
                         "[INST] {{ message['content'] }} [/INST]{% else %}{{ message['content'] }}{{ eos_token }}"
                         "{% endif %}{% endfor %}"}
    with open("tokenizer_config.json", "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
