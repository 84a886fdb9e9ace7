"""Writes continue_cases.json: what transformers' apply_chat_template(..., continue_final_message=True)
renders for conversations whose last message the model continues, with the templates of
engine/src/test/resources/chat-templates and the bundled demo model's, and the demo tokenizer's special
tokens. strftime_now reads the day it runs, written as generated_on for the test to pin its clock to.
Needs transformers (the GPU machine has it). Run from the checkout's root:
    python3 tools/reference/continue_final_message.py OUT_FOLDER
"""
import datetime
import json
import pathlib
import sys

from transformers import AutoTokenizer

root = pathlib.Path(".")
templates = root / "engine/src/test/resources/chat-templates"
tokenizer = AutoTokenizer.from_pretrained(str(root / "models/coil-demo"))


def msg(role, content):
    return {"role": role, "content": content}


CONVERSATIONS = [
    [msg("user", "What does apt-get do?"), msg("assistant", "It installs")],
    [msg("user", "Name a fruit."), msg("assistant", "A ripe ")],
    [msg("system", "Be brief."), msg("user", "Hi"), msg("assistant", "  Hello there")],
    [msg("user", "Say it twice: yes"), msg("assistant", "yes")],
    [msg("user", "Finish my sentence"), msg("user", "The sky is ")],
]

cases = []
sources = [("demo", tokenizer.chat_template)] + [
    (path.name, path.read_text()) for path in sorted(templates.glob("*.jinja"))]
for name, template in sources:
    for messages in CONVERSATIONS:
        case = {"template": name, "messages": messages}
        try:
            case["text"] = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                                         continue_final_message=True)
        except Exception as error:  # the template rejects the conversation, or the message is not in it
            case["error"] = f"{type(error).__name__}: {error}"
        cases.append(case)

out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".") / "continue_cases.json"
out.write_text(json.dumps({"transformers": __import__("transformers").__version__,
                           "generated_on": datetime.date.today().isoformat(), "cases": cases},
                          ensure_ascii=False, indent=1) + "\n")
print(out, len(cases), "cases,", sum("error" in c for c in cases), "errors")
