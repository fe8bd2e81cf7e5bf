"""Prompts for the code-generation and math benchmarks, and extraction of the program from a completion.

Code-reasoning benchmarks do not use this module: they are asked with the AZR solver prompts of
`azr_trl.tasks` so that evaluation measures exactly what self-play trains.

Two formats, rendered by the same wrapper as the training prompts (`azr_trl.tasks.prompts.render`): ``chat`` (a user
message for the tokenizer's chat template: instruct models) and ``r1`` (the plain R1 think/answer template: base
models). Both ask for the final reply inside ``<answer>``; extraction also accepts a bare code block or ``\\boxed{}``.
"""

from __future__ import annotations

import re

from azr_trl.tasks.prompts import render

from .math_grading import last_answer_block
from .registry import CodeGenItem, MathItem


_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


def code_generation_prompt(item: CodeGenItem, fmt: str) -> str | list[dict[str, str]]:
    """The task text for one code-generation problem, in ``fmt`` (``chat`` or ``r1``)."""
    if item.test_style == "check":
        task = (
            "Complete the following Python function. Write the whole function, with the imports it needs, in one "
            f"```python code block.\n\n```python\n{item.prompt.rstrip()}\n```"
        )
    elif item.test_style == "script":
        task = (
            "Write a self-contained Python function that solves the following problem, in one ```python code block."
            f"\n\n{item.prompt.strip()}"
        )
    else:
        if item.starter_code.strip():
            how = (
                "Complete the class in the starter code below and return it in one ```python code block.\n\n"
                f"```python\n{item.starter_code.rstrip()}\n```"
            )
        else:
            how = (
                "Read the input from standard input and write the answer to standard output. Return the program "
                "in one ```python code block."
            )
        task = f"Solve the following programming problem in Python.\n\n{item.prompt.strip()}\n\n{how}"
    return render(task, fmt)


def math_prompt(item: MathItem, fmt: str) -> str | list[dict[str, str]]:
    """The task text for one math problem, in ``fmt`` (``chat`` or ``r1``)."""
    task = f"{item.problem.strip()}\nPlease reason step by step, and put your final answer within \\boxed{{}}."
    return render(task, fmt)


def extract_code(completion: str) -> str | None:
    """The program in a completion: the last fenced code block of the last ``<answer>`` (or of the whole text when
    there is none); without a fence, that text itself (it fails the tests if it is prose). None if empty."""
    region = last_answer_block(completion)
    if region is None:
        region = completion
    blocks = _FENCE.findall(region)
    code = (blocks[-1] if blocks else region).strip("\n")
    return code if code.strip() else None


def complete_program(item: CodeGenItem, code: str | None) -> str | None:
    """The candidate program to test. For a function-completion task (HumanEval style): an answer that only continues
    the given prompt (no ``def <entry_point>``) is appended to the prompt; a whole function gets the prompt's import
    lines in front (``from typing import List``...), which chat models tend to leave out when they rewrite it."""
    if code is None:
        return None
    if item.test_style != "check" or not item.entry_point:
        return code
    if not re.search(rf"^\s*def\s+{re.escape(item.entry_point)}\s*\(", code, re.MULTILINE):
        return item.starter_code + code
    imports = [line for line in item.starter_code.splitlines() if line.startswith(("import ", "from "))]
    missing = [line for line in imports if line not in code.splitlines()]
    return "\n".join(missing + [code]) if missing else code
