"""Prompt text shared by the task types, and the two prompt formats.

The structure follows the reference implementation (sections, fenced ``python``/``input``/``output``/``message``
blocks inside ``<answer>``, the banned-words list, reference snippets); the wording is ours.

Formats:
- ``r1``: one plain string in the R1 think/answer template, ending inside an open ``<think>`` (base models, no chat
  template);
- ``chat``: the same task as a single user message, ``[{"role": "user", "content": ...}]``, for the tokenizer's chat
  template (instruct models). The content ends with a note on the answer format since there is no R1 preamble.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


PROMPT_FORMATS: tuple[str, ...] = ("r1", "chat")
# What a user may ask for: a format, or ``auto`` (chosen by the tokenizer, see ``resolve_prompt_format``).
PROMPT_FORMAT_CHOICES: tuple[str, ...] = ("auto", *sorted(PROMPT_FORMATS))

INPUT_MARKER = "f(<|YOUR INPUT GOES HERE|>)"

_R1_TEMPLATE = (
    "A conversation between User and Assistant. The User gives a task; the Assistant first works through it step by "
    "step in private and then replies with the final answer. The reasoning goes inside <think> </think> tags and the "
    "reply inside <answer> </answer> tags, like this: <think> reasoning here </think> <answer> answer here </answer>. "
    "User: {content}\nAssistant: <think>"
)

_CHAT_FORMAT_NOTE = (
    "Reason step by step inside <think> </think> tags first, then give your final reply inside <answer> </answer> "
    "tags, like this: <think> reasoning here </think> <answer> answer here </answer>"
)


def resolve_prompt_format(prompt_format: str, require_think: bool | None, tokenizer) -> tuple[str, bool]:
    """The prompt format and think requirement a run uses: ``auto`` is ``chat`` when the tokenizer has a chat template,
    else ``r1``; ``require_think`` None means yes for ``r1``, no for ``chat``. Other formats are checked and kept."""
    if prompt_format not in PROMPT_FORMAT_CHOICES:
        raise ValueError(f"Unknown prompt format {prompt_format!r}: use one of {list(PROMPT_FORMAT_CHOICES)}.")
    fmt = prompt_format
    if fmt == "auto":
        fmt = "chat" if getattr(tokenizer, "chat_template", None) else "r1"
    return fmt, (fmt == "r1") if require_think is None else bool(require_think)


def render(content: str, fmt: str, chat_note: str = _CHAT_FORMAT_NOTE) -> str | list[dict[str, Any]]:
    """Wrap task ``content`` in prompt format ``fmt`` (``"r1"`` or ``"chat"``).

    ``chat_note`` ends a chat prompt with how to lay out the reply (the r1 template says it in its preamble); a task
    whose content already shows a worked reply passes its own, shorter note.
    """
    if fmt == "r1":
        return _R1_TEMPLATE.format(content=content.strip())
    if fmt == "chat":
        return [{"role": "user", "content": content.strip() + "\n\n" + chat_note}]
    raise ValueError(f"Unknown prompt format {fmt!r}: use one of {list(PROMPT_FORMATS)}.")


def prompt_text(prompt: str | list[dict[str, Any]]) -> str:
    """The text of a rendered prompt (the concatenated message contents for ``chat``)."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(str(m.get("content", "")) for m in prompt)


def fence(tag: str, body: str) -> str:
    """A fenced block ```` ```tag ... ``` ````."""
    return f"```{tag}\n{body.strip(chr(10))}\n```"


def program_requirements(heading: str) -> str:
    """The requirements every program (proposed, or written by the induction solver) must meet."""
    return "\n".join(
        [
            heading,
            "- The entry point is a function named `f` that takes at least one argument and returns a value.",
            "- Helper functions (nested or at the top level) and classes are allowed; put imports and class "
            "definitions at the top.",
            "- It must be deterministic: the same input always gives the same output.",
            "- It should carry state through several transformations of the data.",
            "- No randomness, dates or times, files, network, printing or logging, and no state from outside the "
            "program.",
            "- It must finish well within 10 seconds.",
            "- End the program with the `return` of `f`: anything after it is dropped.",
        ]
    )


def banned_words_line(banned: Sequence[str]) -> str:
    """The evaluation bullet that lists forbidden modules (empty when nothing is banned)."""
    if not banned:
        return ""
    return (
        "- Forbidden words: do not use any of these anywhere in the program, not even in comments: "
        + ", ".join(banned)
        + "."
    )


def snippet(index: int, program: str, input_src: str | None, output: str | None) -> str:
    """One reference triplet as a ``<snippet_i>`` block."""
    parts = [f"<snippet_{index}>", fence("python", program)]
    if input_src is not None:
        parts.append(fence("input", input_src))
    if output is not None:
        parts.append(fence("output", output))
    parts.append(f"</snippet_{index}>")
    return "\n".join(parts)
