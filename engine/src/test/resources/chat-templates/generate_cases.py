"""Writes cases.json: expected renders of the templates in this folder by Python Jinja2 (3.1), set up as
transformers sets up apply_chat_template (trim_blocks, lstrip_blocks, loop controls, a generation block,
raise_exception, strftime_now, tojson as json.dumps with ensure_ascii=False). strftime_now is pinned to
2025-03-14 so the output is stable. Run: python3 generate_cases.py
"""
import json
from datetime import datetime

from jinja2 import nodes
from jinja2.exceptions import TemplateError
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

PINNED_NOW = datetime(2025, 3, 14, 12, 0, 0)


class GenerationBlock(Extension):
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def raise_exception(message):
    raise TemplateError(message)


def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationBlock, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: PINNED_NOW.strftime(fmt)
    return env


def msg(role, content):
    return {"role": role, "content": content}


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "  Current weather for a city. ",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name, e.g. Zürich"},
        "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "add", "description": "Adds numbers",
        "parameters": {"type": "object", "properties": {"a": {"type": "number", "description": "first"},
                                                          "b": {"type": "number", "description": "second"}},
                       "required": ["a", "b"]}}}]

CONVERSATION = [msg("system", "  Be concise.\n"), msg("user", "Hi there"), msg("assistant", "Hello! How can I help?"),
                msg("user", "Name a CJK character: 中, and an emoji 🙂.")]

CASES = [
    ("alternating-roles.jinja", CONVERSATION, True, {}),
    ("alternating-roles.jinja", CONVERSATION[1:], False, {}),
    ("alternating-roles.jinja", [msg("user", "a"), msg("user", "b")], True, {}),
    ("reasoning.jinja", [msg("system", "\n  Think first.  \n"), msg("user", "What is 2+2?"),
                         msg("assistant", "<think>\nEasy.\n</think>\n\n4"), msg("user", "<result>ok</result>"),
                         msg("assistant", "<think>\nCheck the tool.\n</think>\nDone!")], True, {}),
    ("reasoning.jinja", [msg("user", "Hello"), msg("assistant", "<think>x</think>Hi!"), msg("user", "Again")],
     True, {"enable_thinking": False}),
    ("reasoning.jinja", [msg("user", "Hello")], False, {}),
    ("tools.jinja", CONVERSATION, True, {"tools": TOOLS}),
    ("tools.jinja", CONVERSATION[:2], False, {}),
    ("header-blocks.jinja", CONVERSATION, True, {}),
    ("header-blocks.jinja", CONVERSATION[1:3], False, {}),
    ("string-methods.jinja", [msg("user", "Hello world. foo"), msg("assistant", "  line one\nline two\n"),
                              msg("tool", "\u00a0Hi\tthere, ça va? 中文 🙂!\n")], False, {}),
]

TOOL_TURNS = [msg("user", "Weather in Zürich, and 2+3?"),
              {"role": "assistant", "content": None, "tool_calls": [
                  {"id": "call_1", "type": "function",
                   "function": {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "c"}}},
                  {"id": "call_2", "type": "function", "function": {"name": "add", "arguments": {"a": 2, "b": 3}}}]},
              {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "12 °C, rain"},
              {"role": "tool", "tool_call_id": "call_2", "content": "5"}]

CASES += [
    ("tool-calls.jinja", TOOL_TURNS, True, {"tools": TOOLS}),
    ("tool-calls.jinja", TOOL_TURNS[:2], False, {}),
]

BOS, EOS = "<s>", "</s>"


def main():
    env = environment()
    out = []
    for name, messages, add_generation_prompt, extra in CASES:
        with open(name, encoding="utf-8") as f:
            template = env.from_string(f.read())
        case = {"template": name, "messages": messages, "add_generation_prompt": add_generation_prompt,
                "variables": extra, "bos_token": BOS, "eos_token": EOS}
        try:
            case["text"] = template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                           bos_token=BOS, eos_token=EOS, **extra)
        except TemplateError as e:
            case["error"] = str(e)
        out.append(case)
    with open("cases.json", "w", encoding="utf-8") as f:
        json.dump({"generated_by": "python3 generate_cases.py (Jinja2 " + __import__("jinja2").__version__ + ")",
                   "pinned_now": PINNED_NOW.isoformat(), "cases": out}, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
