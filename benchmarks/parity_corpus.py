"""The seeded corpus of ``bench_reference_parity.py``: solver completions, proposals and Monte-Carlo rollouts for the
tasks of ``parity_programs.py``.

Every completion is built by drawing one choice from each of several independent axes (the value written, where in
the answer it is written, the think/answer envelope around it, the prompt format), so combinations nobody wrote by
hand come up. Each case records the choices it was built from as ``traits`` (``"box:hash_line"``,
``"env:dialogue"``...), which is how the benchmark explains a disagreement.

The weights follow what base and instruct models write: layouts and envelope slips are common; adversarial or exotic
content (an ``__eq__`` that is always true, a program that raises ``Exception`` or prints ``Assistant:``, an output of
400+ characters, a non-literal answer) is rare but always present, so every class shows up with an example while the
agreement rates stay those of a plausible batch.
"""

from __future__ import annotations

import ast
import random
from dataclasses import dataclass, field
from typing import Any

from parity_programs import PROPOSAL_ONLY, ProgramSeed, bool_int_swap, mutate, non_literal, respell


# ----------------------------------------------------------------------------------------------------------------------
# Where the value goes inside <answer>

BOXES = [
    ("fenced", 30), ("fenced_upper", 2), ("fenced_glued", 3), ("fenced_oneline", 2), ("fenced_space", 2),
    ("untagged", 4), ("python_tag", 3), ("hash_line", 4), ("bare_line", 3), ("bold_line", 2), ("comment", 3),
    ("tag", 3), ("tag_open", 1), ("phrase", 3), ("phrase_colon", 2), ("bare", 6), ("bare_explained", 3), ("call", 1),
    ("two_blocks_fixed", 3), ("two_blocks_last_wrong", 2), ("indexed", 1), ("hash_line_explained", 2), ("empty_block", 1),
    ("hash_line_then_block", 1), ("reasoned_block", 3), ("fenced_comment", 2), ("fenced_blank_line", 1),
]  # fmt: skip


def box(kind: str, value: str, wrong: str, choice: str) -> str:
    """The text of an answer that writes ``value`` as ``choice`` says (``kind`` is ``input`` or ``output``)."""
    cap = kind.capitalize()
    return {
        "fenced": f"```{kind}\n{value}\n```",
        "fenced_upper": f"```{kind.upper()}\n{value}\n```",
        "fenced_glued": f"```{kind}{value}```",
        "fenced_oneline": f"```{kind} {value}```",
        "fenced_space": f"```{kind} \n{value}\n```",
        "untagged": f"```\n{value}\n```",
        "python_tag": f"```python\n{value}\n```",
        "hash_line": f"# {cap}: {value}",
        "bare_line": f"{cap}: {value}",
        "bold_line": f"**{cap}:** {value}",
        "comment": f"```python\nresult = f(...)  # {cap}: {value}\n```",
        "tag": f"<{kind}>{value}</{kind}>",
        "tag_open": f"<{kind}> {value}",
        "phrase": f"The {kind} is {value}.",
        "phrase_colon": f"So the {kind} is: {value}",
        "bare": value,
        "bare_explained": f"{value}\nThis is what the loop leaves behind.",
        "call": f"{kind}({value})",
        "two_blocks_fixed": f"```{kind}\n{wrong}\n```\nWait, that is not right. Fixed:\n```{kind}\n{value}\n```",
        "two_blocks_last_wrong": f"```{kind}\n{value}\n```\nor maybe\n```{kind}\n{wrong}\n```",
        "indexed": f"```{kind}_0\n{value}\n```",
        "hash_line_explained": f"# {cap}: {value}\nThe first step decides it.",
        "empty_block": f"```{kind}\n```\n{value}",
        "hash_line_then_block": f"# {cap}: {wrong}\n```{kind}\n{value}\n```",
        "reasoned_block": f"Tracing it once more, step by step.\n\n```{kind}\n{value}\n```",
        "fenced_comment": f"```{kind}\n{value}  # my {kind}\n```",
        "fenced_blank_line": f"```{kind}\n{value}\n\n```",
    }[choice]


PROGRAM_BOXES = [
    ("python", 40), ("untagged", 6), ("py", 3), ("upper", 3), ("glued", 2), ("two_blocks", 5), ("usage_last", 4),
    ("output_last", 2), ("no_block", 3), ("text_tag", 2), ("python_space", 2),
]  # fmt: skip


def program_box(program: str, draft: str, choice: str) -> str:
    return {
        "python": f"```python\n{program}\n```",
        "untagged": f"```\n{program}\n```",
        "py": f"```py\n{program}\n```",
        "upper": f"```Python\n{program}\n```",
        "glued": f"```python{program}```",
        "two_blocks": f"A first try:\n```python\n{draft}\n```\nThat fails an example. Final:\n```python\n{program}\n```",
        "usage_last": f"```python\n{program}\n```\nFor example:\n```python\nprint(f(2, 3))\n```",
        "output_last": f"```python\n{program}\n```\n```output\n7\n```",
        "no_block": program,
        "text_tag": f"```text\n{program}\n```",
        "python_space": f"```python \n{program}\n```",
    }[choice]


# ----------------------------------------------------------------------------------------------------------------------
# The think/answer envelope

R1_ENVELOPES = [
    ("std", 40), ("compact", 6), ("trailing_text", 5), ("dialogue", 6), ("dialogue_same", 2), ("dialogue_noanswer", 3),
    ("missing_think_close", 3), ("text_between", 3), ("no_answer", 3), ("unclosed_answer", 3), ("two_answers", 3),
    ("trailing_open_answer", 3), ("empty_then_answer", 2), ("double_open", 2), ("quote_tail", 2),
    ("assistant_in_reasoning", 2), ("leading_newlines", 2), ("misordered", 2), ("empty_answer", 2), ("unicode", 3),
    ("answer_in_think", 2), ("think_after_answer", 2),
]  # fmt: skip
CHAT_ENVELOPES = [
    ("chat_std", 30),
    ("chat_no_think", 12),
    ("chat_preface", 5),
    ("chat_close_only", 3),
    ("chat_markdown", 3),
] + [e for e in R1_ENVELOPES if e[0] not in ("std", "double_open")]

_REASONS = [
    "Let me trace the loop one element at a time.",
    "First I check the base case, then the recursion.",
    "The function keeps a running state; follow it carefully.",
    "Compute step by step: 3 -> 6 -> 5, and so on.",
    "Hmm, wait. Let me recheck the second iteration.",
]


def envelope(body: str, other: str, choice: str, fmt: str, rng: random.Random) -> str:
    """A completion around the answer text ``body`` (``other``: a different answer, for invented turns and drafts).

    r1 completions start inside the prompt's open ``<think>``; chat completions are whole assistant messages, so
    their think block (when they write one) opens with their own ``<think>``.
    """
    reason = rng.choice(_REASONS)
    if choice == "unicode":
        reason += " Résumé: ∑ ≤ 3 → ok ✓ 😀"
    opened = " " if fmt == "r1" else "<think>\n"
    std = f"{opened}{reason}\n</think>\n<answer>\n{body}\n</answer>"
    return {
        "std": std,
        "unicode": std,
        "chat_std": std,
        "chat_no_think": f"<answer>\n{body}\n</answer>",
        "chat_preface": f"Let me work through this.\n\n<answer>\n{body}\n</answer>",
        "chat_close_only": f"{reason}\n</think>\n<answer>\n{body}\n</answer>",
        "chat_markdown": f"**Reasoning.** {reason}\n\n**Answer.**\n<answer>\n{body}\n</answer>",
        "compact": f"{opened.strip()}{reason}</think><answer>{body}</answer>",
        "trailing_text": std + "\n\nI hope this helps!",
        "dialogue": std
        + f"\nUser: Great, and another one?\nAssistant: <think> {reason} </think> <answer>{other}</answer>",
        "dialogue_same": std + f"\nUser: Are you sure?\nAssistant: <think> yes </think> <answer>{body}</answer>",
        "dialogue_noanswer": std + "\nUser: thanks\nAssistant: You're welcome.",
        "missing_think_close": f"{opened}{reason}\n<answer>\n{body}\n</answer>",
        "text_between": f"{opened}{reason}\n</think>\nSo the final answer is:\n<answer>\n{body}\n</answer>",
        "no_answer": f"{opened}{reason}\n</think>\n{body}",
        "unclosed_answer": f"{opened}{reason}\n</think>\n<answer>\n{body}",
        "two_answers": f"{opened}{reason}\n</think>\n<answer>\n{other}\n</answer>\nActually no:\n<answer>\n{body}\n</answer>",
        "trailing_open_answer": std + rng.choice(["\n<answer>", "\n<answer> ", "\n\n<answer>\n"]),
        "empty_then_answer": f"{opened}{reason}\n</think>\n<answer></answer>\n<answer>\n{body}\n</answer>",
        "double_open": f"<think> {reason}\n</think>\n<answer>\n{body}\n</answer>",
        "quote_tail": std + rng.choice(['"', "'", "\n'''"]),
        "assistant_in_reasoning": f"{opened}{reason} As the Assistant: I answer now.\n</think>\n<answer>\n{body}\n</answer>",
        "leading_newlines": "\n\n" + std,
        "misordered": f"{opened}{reason}\n<answer>\n{body}\n</answer>\n</think>",
        "empty_answer": f"{opened}{reason}\n</think>\n<answer>\n</answer>",
        "answer_in_think": f"{opened}{reason} <answer>{other}</answer>\n</think>\n<answer>\n{body}\n</answer>",
        "think_after_answer": std + f"\n<think> {reason} </think>",
    }[choice]


def pick(rng: random.Random, weighted: list[tuple[str, int]]) -> str:
    names, weights = zip(*weighted, strict=True)
    return rng.choices(names, weights)[0]


# ----------------------------------------------------------------------------------------------------------------------
# Cases


@dataclass
class ProposeCase:
    """One proposer completion; ``reference`` is the program task an induction proposal is about."""

    task_type: str
    fmt: str
    completion: str
    traits: tuple[str, ...]
    reference: dict[str, Any] | None = None
    references: list[dict[str, Any]] = field(default_factory=list)


def triplet_answer(task_type: str, task: dict[str, Any], rng: random.Random) -> tuple[str, str, str]:
    """(answer text, a wrong answer text, the value trait) for a deduction or abduction task."""
    if task_type == "deduction":
        value = ast.literal_eval(task["output"])
        wrong = repr(mutate(value, rng))
        options = [("exact", 50), ("respelled", 10), ("wrong", 20), ("bool_int", 2), ("non_literal", 1), ("call", 2)]
        options += [("empty", 2), ("tuple_list", 3), ("spaced", 3)]
        choice = pick(rng, options)
        text = {
            "exact": task["output"],
            "respelled": respell(value, rng),
            "wrong": wrong,
            "bool_int": repr(bool_int_swap(value)) if bool_int_swap(value) is not None else None,
            "non_literal": non_literal(value),
            "call": f"f({task['input']})",
            "empty": "",
            "tuple_list": repr(list(value)) if isinstance(value, tuple) else None,
            "spaced": "  " + task["output"] + "  ",
        }[choice]
        if text is None:
            choice, text = "exact", task["output"]
        return text, wrong, choice
    args = ast.literal_eval(f"({task['input']},)")
    wrong = ", ".join(repr(a) for a in mutate(list(args), rng))
    options = [("exact", 50), ("respelled", 10), ("wrong", 20), ("call", 3), ("multiline", 1), ("non_literal", 1)]
    options += [("empty", 2), ("as_tuple", 2)]
    choice = pick(rng, options)
    if choice == "respelled":
        text = ", ".join(respell(a, rng) for a in args)
    elif choice == "wrong":
        text = wrong
    elif choice == "call":
        text = f"f({task['input']})"
    elif choice == "multiline":
        text = ",\n".join(repr(a) for a in args) if len(args) > 1 else None
        if text is None and isinstance(args[0], list) and len(args[0]) > 1:
            text = "[\n" + ",\n".join(f"    {v!r}" for v in args[0]) + "\n]"
    elif choice == "non_literal":
        first = non_literal(args[0])
        text = ", ".join([first, *(repr(a) for a in args[1:])]) if first else None
    elif choice == "as_tuple":
        text = repr(tuple(args)) if len(args) > 1 else None
    elif choice == "empty":
        text = ""
    else:
        text = task["input"]
    if text is None:
        choice, text = "exact", task["input"]
    if "\n" in text.strip():
        choice = "multiline"  # the gold input itself may span lines
    return text, wrong, choice


def _rename(program: str, new: str) -> str:
    return program.replace("def f(", f"def {new}(").replace(" f(", f" {new}(")


def induction_answer(task: dict[str, Any], rng: random.Random) -> tuple[str, str, str]:
    """(program text, a wrong program, the value trait) for an induction task."""
    gold = task["program"]
    wrong = "def f(*args):\n    return args[0]"
    options = [("exact", 45), ("wrong", 20), ("renamed", 6), ("no_import", 6), ("top_print", 5), ("main_guard", 3)]
    options += [("eq_any", 1), ("input_call", 1), ("syntax_error", 3), ("helper", 4), ("count_method", 2)]
    options += [("banned_import", 1)]
    choice = pick(rng, options)
    body = {
        "exact": gold,
        "wrong": wrong,
        "renamed": _rename(gold, "solve"),
        "no_import": "\n".join(
            line for line in gold.splitlines() if not line.startswith(("import ", "from "))
        ).strip(),
        "top_print": gold + "\n\nprint(f(*[1, 2][:1]))",
        "main_guard": gold + '\n\nif __name__ == "__main__":\n    print("checked")',
        "eq_any": "class Any:\n    def __eq__(self, other):\n        return True\n\ndef f(*args):\n    return Any()",
        "input_call": "def read_input(x):\n    return x\n\n" + gold.replace("def f(", "def g(") + "\n\ndef f(*a):\n"
        "    return g(*read_input(a))",
        "syntax_error": gold.replace("):", ")", 1),
        "helper": "def _same(x):\n    return x\n\n" + gold,
        "count_method": "def count(xs):\n    return len(xs)\n\n" + gold,
        "banned_import": "import random\n\n" + gold,
    }[choice]
    if choice == "no_import" and body == gold:
        choice = "exact"
    return body, wrong, choice


def solve_completion(
    task_type: str, task: dict[str, Any], fmt: str, rng: random.Random
) -> tuple[str, tuple[str, ...]]:
    """One solver completion for ``task`` and the traits it was built from."""
    if task_type == "induction":
        value, wrong, value_trait = induction_answer(task, rng)
        box_choice = pick(rng, PROGRAM_BOXES)
        body = program_box(value, wrong, box_choice)
        other = program_box(wrong, wrong, "python")
    else:
        kind = "output" if task_type == "deduction" else "input"
        value, wrong, value_trait = triplet_answer(task_type, task, rng)
        box_choice = pick(rng, BOXES)
        body = box(kind, value, wrong, box_choice)
        other = box(kind, wrong, wrong, "fenced")
    env_choice = pick(rng, R1_ENVELOPES if fmt == "r1" else CHAT_ENVELOPES)
    text = envelope(body, other, env_choice, fmt, rng)
    return text, (f"val:{value_trait}", f"box:{box_choice}", f"env:{env_choice}", f"fmt:{fmt}")


# ----------------------------------------------------------------------------------------------------------------------
# Proposals

PROGRAM_VARIANTS = [
    ("plain", 40), ("renamed", 5), ("helper", 4), ("nested", 3), ("top_print", 4), ("main_guard", 2), ("comments", 4),
    ("library_odd", 2),
]  # fmt: skip
INPUT_VARIANTS = [
    ("plain", 60), ("multiline", 3), ("non_literal", 1), ("call", 3), ("kwargs", 1), ("input_marker", 1),
    ("input_call_text", 1),
]  # fmt: skip
PROPOSAL_LAYOUTS = [
    ("std", 45), ("input_first", 5), ("untagged_code", 5), ("py_tag", 2), ("upper_tags", 3), ("glued_input", 3),
    ("hash_input", 3), ("two_code_blocks", 3), ("two_inputs", 3), ("missing_input", 2), ("missing_code", 2),
    ("empty_input", 1), ("plan_then_code", 4), ("input_line_comment", 2),
]  # fmt: skip


def _program_variant(seed: ProgramSeed, rng: random.Random) -> tuple[str, str, str]:
    """(program, input, variant trait) of one proposed program."""
    choice = pick(rng, PROGRAM_VARIANTS)
    program, input_src = seed.program, seed.draw(rng)
    if choice == "library_odd":
        name = rng.choice(sorted(PROPOSAL_ONLY))
        program, input_src = PROPOSAL_ONLY[name]
        return program, input_src, f"odd:{name}"
    if choice == "renamed":
        program = _rename(program, rng.choice(["solve", "transform", "main"]))
    elif choice == "helper":
        program = "def _twice(x):\n    return x\n\n" + program
    elif choice == "nested":
        program = program.replace("def f(", "def f(", 1).replace(":\n", ":\n    def _noop(v):\n        return v\n", 1)
    elif choice == "top_print":
        program += f"\n\nprint(f({input_src}))"
    elif choice == "main_guard":
        program += f'\n\nif __name__ == "__main__":\n    print(f({input_src}))'
    elif choice == "comments":
        program = "# A small puzzle.\n" + program.replace(":\n", ":  # step\n", 1)
    return program, input_src, choice


def _input_variant(input_src: str, rng: random.Random) -> tuple[str, str]:
    choice = pick(rng, INPUT_VARIANTS)
    args = ast.literal_eval(f"({input_src},)")
    if choice == "multiline":
        return ",\n".join(repr(a) for a in args), choice
    if choice == "non_literal":
        first = non_literal(args[0])
        if first:
            return ", ".join([first, *(repr(a) for a in args[1:])]), choice
    if choice == "call":
        return f"f({input_src})", choice
    if choice == "kwargs":
        return f"x={input_src}" if len(args) == 1 else input_src, choice if len(args) == 1 else "plain"
    if choice == "input_marker":
        return input_src + "  # one input", choice
    if choice == "input_call_text" and isinstance(args[0], str) and len(args) == 1:
        return "'input(x)'", choice
    return input_src, "plain"


def proposal_body(program: str, input_src: str, layout: str, rng: random.Random) -> str:
    code, inp = f"```python\n{program}\n```", f"```input\n{input_src}\n```"
    return {
        "std": f"{code}\n\n{inp}",
        "input_first": f"{inp}\n\n{code}",
        "untagged_code": f"```\n{program}\n```\n\n{inp}",
        "py_tag": f"```py\n{program}\n```\n\n{inp}",
        "upper_tags": f"```Python\n{program}\n```\n\n```Input\n{input_src}\n```",
        "glued_input": f"{code}\n\n```input{input_src}```",
        "hash_input": f"{code}\n\n# Input: {input_src}",
        "two_code_blocks": f"```python\ndef f(x):\n    return x\n```\nBetter:\n{code}\n\n{inp}",
        "two_inputs": f"{code}\n\n```input\n{input_src}\n```\n```input\n0\n```",
        "missing_input": code,
        "missing_code": inp,
        "empty_input": f"{code}\n\n```input\n```",
        "plan_then_code": f"The program keeps a running state.\n\n{code}\n\nAnd the input:\n{inp}",
        "input_line_comment": f"```python\n{program}\n\n# Input: {input_src}\n```",
    }[layout]


def triplet_proposal(seed: ProgramSeed, fmt: str, rng: random.Random) -> tuple[str, tuple[str, ...]]:
    program, input_src, program_trait = _program_variant(seed, rng)
    input_text, input_trait = _input_variant(input_src, rng)
    layout = pick(rng, PROPOSAL_LAYOUTS)
    body = proposal_body(program, input_text, layout, rng)
    other = proposal_body("def f(x):\n    return x", "1", "std", rng)
    env_choice = pick(rng, R1_ENVELOPES if fmt == "r1" else CHAT_ENVELOPES)
    traits = (f"prog:{program_trait}", f"inp:{input_trait}", f"layout:{layout}", f"env:{env_choice}", f"fmt:{fmt}")
    return envelope(body, other, env_choice, fmt, rng), traits


INDUCTION_COUNTS = [(10, 70), (9, 5), (11, 6), (12, 4), (5, 2)]
INDUCTION_INPUT_VARIANTS = [
    ("plain", 70), ("duplicate", 6), ("non_literal", 4), ("erroring", 4), ("glued", 3), ("hash_lines", 3),
    ("upper", 2), ("call", 3), ("multiline", 2),
]  # fmt: skip
MESSAGE_VARIANTS = [
    ("block", 60), ("tag", 6), ("hash_line", 6), ("empty_block", 4), ("missing", 4), ("leaks", 4), ("first", 4),
    ("upper", 2), ("multiline", 3), ("two_blocks", 2),
]  # fmt: skip


def induction_proposal(reference: dict[str, Any], draw: Any, fmt: str, rng: random.Random) -> tuple[str, tuple]:
    count = pick(rng, [(str(n), w) for n, w in INDUCTION_COUNTS])
    inputs: list[str] = []
    for _ in range(200):
        if len(inputs) == int(count):
            break
        src = draw(rng)
        if src not in inputs:
            inputs.append(src)
    variant = pick(rng, INDUCTION_INPUT_VARIANTS)
    if variant == "duplicate" and len(inputs) > 1:
        inputs[-1] = inputs[0]
    elif variant == "non_literal":
        first = non_literal(ast.literal_eval(f"({inputs[-1]},)")[0])
        inputs[-1] = first if first and "," not in inputs[-1] else inputs[-1]
    elif variant == "erroring":
        inputs[-1] = "None"
    elif variant == "call":
        inputs[-1] = f"f({inputs[-1]})"
    elif variant == "multiline":
        inputs[-1] = inputs[-1].replace(", ", ",\n")
    if variant == "glued":
        blocks = [f"```input{src}```" for src in inputs]
    elif variant == "hash_lines":
        blocks = [f"# Input: {src}" for src in inputs]
    elif variant == "upper":
        blocks = [f"```Input\n{src}\n```" for src in inputs]
    else:
        blocks = [f"```input\n{src}\n```" for src in inputs]
    message = "The function transforms its arguments step by step; look at how the outputs grow."
    message_choice = pick(rng, MESSAGE_VARIANTS)
    msg = {
        "block": f"```message\n{message}\n```",
        "tag": f"<message>{message}</message>",
        "hash_line": f"# Message: {message}",
        "empty_block": "```message\n```",
        "missing": "",
        "leaks": f"```message\n{reference['program']}\n```",
        "first": f"```message\n{message}\n```",
        "upper": f"```Message\n{message}\n```",
        "multiline": f"```message\n{message}\nHint: {rng.choice(['sorting', 'counting', 'state'])}.\n```",
        "two_blocks": f"```message\n{message}\n```\n```message\nIgnore this one.\n```",
    }[message_choice]
    parts = [msg, *blocks] if message_choice == "first" else [*blocks, msg]
    body = "\n".join(p for p in parts if p)
    env_choice = pick(rng, R1_ENVELOPES if fmt == "r1" else CHAT_ENVELOPES)
    other = "```input\n1\n```\n```message\nshort\n```"
    traits = (f"count:{count}", f"inp:{variant}", f"msg:{message_choice}", f"env:{env_choice}", f"fmt:{fmt}")
    return envelope(body, other, env_choice, fmt, rng), traits
