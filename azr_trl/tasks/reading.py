"""Reading model completions: where a completion ends, its think/answer envelope, and where inside the answer the
program, the input(s), the message or the predicted value are.

Two readers, chosen by ``answer_extraction``, hold every such rule, for both roles and the Monte-Carlo rollouts:

- ``reference`` (the default) reads a completion where the reference code reads it: the text between the prompt's
  ``Assistant:`` and the next one, its format regex, its fence patterns (a tag glued to the value counts, the
  language tag of a program block is optional), its ``# Output:`` / ``<output>`` / "the output is" fallbacks with
  their exact extent, ``<message>`` and ``# Message:`` for induction messages, the last fenced block of an induction
  answer whatever its tag. Its Monte-Carlo rollouts are read from the whole completion, as the reference decodes them.
- ``strict`` reads fenced blocks only: a tag on its own line, the last ```` ```output ```` / ```` ```input ```` block,
  ```` ```python ```` or untagged programs, a non-empty ```` ```message ```` block, a closed last ``<answer>``.

Nothing here executes model text or parses it as code: it only finds text. Programs and inputs are checked by
:mod:`azr_trl.tasks.parsing` and run by the executor.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass


THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
# A base model that goes on after its answer writes the next turns itself; its turn ends where the next one begins.
NEXT_TURN = "Assistant:"


@dataclass(frozen=True)
class Envelope:
    """The ``<think>``/``<answer>`` structure of one completion.

    ``answer`` is the text of the answer the reader grades (``None`` when there is none), extracted even when the
    format is wrong so callers can still look at it (e.g. Monte-Carlo rollouts). ``error`` names the format problem:
    ``missing_answer``, ``unclosed_answer``, ``missing_think``, ``misordered_tags`` or ``unclosed_think``.
    """

    format_ok: bool
    answer: str | None
    error: str | None = None


@dataclass(frozen=True)
class Block:
    """One fenced block: ``tag`` is the lower-cased language tag (``""`` when absent)."""

    tag: str
    body: str


def own_turn(completion: str) -> str:
    """The completion up to the next ``Assistant:``: what the model wrote before inventing further turns."""
    return completion.split(NEXT_TURN, 1)[0]


def last_answer(text: str) -> str | None:
    """Content of the last ``<answer>`` (to the end of ``text`` if it is not closed), or ``None``."""
    start = text.rfind(ANSWER_OPEN)
    if start < 0:
        return None
    start += len(ANSWER_OPEN)
    end = text.find(ANSWER_CLOSE, start)
    return text[start:] if end < 0 else text[start:end]


# ----------------------------------------------------------------------------------------------------------------------
# Fenced blocks (the strict reader's unit; the run report shows them too)

# Fence tags that name the content of a block; anything else on the opening line is treated as content.
_KNOWN_TAGS = re.compile(r"(?i)^(python3?|py|input(_\d+)?|output(_\d+)?|message)$")


def fenced_blocks(text: str) -> list[Block]:
    """All ```` ``` ```` fenced blocks of ``text`` in order.

    The opening line may carry a tag (```` ```python ````, ```` ```input ````, ```` ```output_3 ````...). An opening line
    with anything else on it is treated as inline content (```` ```'abc'``` ````). An unclosed last fence is ignored.
    """
    blocks: list[Block] = []
    pos = 0
    while True:
        start = text.find("```", pos)
        if start < 0:
            return blocks
        end = text.find("```", start + 3)
        if end < 0:
            return blocks
        inner = text[start + 3 : end]
        first_line, newline, rest = inner.partition("\n")
        tag = first_line.strip()
        if newline and (not tag or _KNOWN_TAGS.match(tag)):
            blocks.append(Block(tag.lower(), rest.rstrip("\n").rstrip()))
        elif not newline and _KNOWN_TAGS.match(tag.split(" ", 1)[0]) and " " in tag:
            # ```input 'abc'``` on one line
            name, _, body = tag.partition(" ")
            blocks.append(Block(name.lower(), body.strip()))
        else:
            blocks.append(Block("", inner.strip("\n").rstrip()))
        pos = end + 3


def blocks_with_tag(blocks: list[Block], *tags: str) -> list[Block]:
    """The blocks whose tag is one of ``tags`` (lower case)."""
    return [b for b in blocks if b.tag in tags]


def code_blocks(blocks: list[Block]) -> list[Block]:
    """Blocks tagged as Python, or untagged."""
    return blocks_with_tag(blocks, "python", "python3", "py", "")


# ----------------------------------------------------------------------------------------------------------------------
# Readers


class CompletionReader(abc.ABC):
    """Where the parts of a completion are. One instance per ``answer_extraction`` value (see :data:`READERS`).

    Every method takes the text its caller has at that point: :meth:`envelope` the whole completion, the others the
    ``answer`` of the envelope.
    """

    name: str = ""

    @abc.abstractmethod
    def envelope(self, completion: str, require_think: bool, monte_carlo: bool = False) -> Envelope:
        """The format verdict and the answer text of a completion.

        ``require_think``: the completion must be ``<think> ... </think> <answer> ... </answer>``; a completion that
        does not start with ``<think>`` is read as if it did, since the r1 prompt (and many chat templates) open it.
        Without it a think block is optional. ``monte_carlo``: a rollout read only for its answer (no format
        requirement).
        """

    @abc.abstractmethod
    def answer_value(self, answer: str, kind: str) -> str | None:
        """The predicted ``input`` or ``output`` value of a deduction/abduction answer, or ``None`` when there is none."""

    @abc.abstractmethod
    def answer_program(self, answer: str) -> str | None:
        """The program of an induction answer, or ``None`` when there is none."""

    @abc.abstractmethod
    def program_and_input(self, answer: str) -> tuple[str | None, str | None]:
        """The program and the input of a deduction/abduction proposal (``None`` for a missing one)."""

    @abc.abstractmethod
    def inputs_and_message(self, answer: str) -> tuple[list[str], str | None]:
        """Every input of an induction proposal in order, and its message (``None`` when there is none)."""


class StrictReader(CompletionReader):
    """Fenced blocks only, each tag on its own opening line; a closed last ``<answer>``."""

    name = "strict"
    _ENVELOPE = re.compile(r"\s*<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)

    def envelope(self, completion: str, require_think: bool, monte_carlo: bool = False) -> Envelope:
        text = own_turn(completion)
        answer = last_answer(text)
        answer_at = text.rfind(ANSWER_OPEN)
        if answer_at < 0:
            return Envelope(False, None, "missing_answer")
        if text.find(ANSWER_CLOSE, answer_at) < 0:
            return Envelope(False, answer, "unclosed_answer")
        if require_think:
            text = text if text.lstrip().startswith(THINK_OPEN) else THINK_OPEN + text
            if THINK_CLOSE not in text:
                return Envelope(False, answer, "missing_think")
            if not self._ENVELOPE.match(text):
                return Envelope(False, answer, "misordered_tags")
            return Envelope(True, answer)
        return _optional_think(text[:answer_at], answer)

    def answer_value(self, answer: str, kind: str) -> str | None:
        blocks = blocks_with_tag(fenced_blocks(answer), _check_kind(kind))
        return blocks[-1].body.strip() if blocks else None

    def answer_program(self, answer: str) -> str | None:
        code = code_blocks(fenced_blocks(answer))
        return code[-1].body if code else None

    def program_and_input(self, answer: str) -> tuple[str | None, str | None]:
        blocks = fenced_blocks(answer)
        code, inputs = code_blocks(blocks), blocks_with_tag(blocks, "input")
        return (code[0].body if code else None), (inputs[0].body if inputs else None)

    def inputs_and_message(self, answer: str) -> tuple[list[str], str | None]:
        blocks = fenced_blocks(answer)
        messages = blocks_with_tag(blocks, "message")
        message = messages[0].body.strip() if messages else ""
        return [b.body for b in blocks_with_tag(blocks, "input")], (message or None)


def _optional_think(before_answer: str, answer: str | None) -> Envelope:
    """Format verdict when a think block is optional: one opened before the answer must be closed before it."""
    think_at = before_answer.find(THINK_OPEN)
    if think_at >= 0 and before_answer.find(THINK_CLOSE, think_at) < 0:
        return Envelope(False, answer, "unclosed_think")
    return Envelope(True, answer)


def _check_kind(kind: str) -> str:
    if kind not in ("input", "output"):
        raise ValueError(f"kind must be 'input' or 'output', got {kind!r}.")
    return kind


_FLAGS = re.DOTALL | re.IGNORECASE
# A fenced block whose opening tag may be glued to the value or followed by spaces, as the reference matches it.
_TAGGED_FENCE = {kind: re.compile(rf"```{kind}\s*\n?(.*?)\n?```", _FLAGS) for kind in ("input", "output", "message")}
# Its program block: the language tag is optional, so any fence pair matches (```output 7``` gives "output 7").
_PROGRAM_FENCE = re.compile(r"```(?:python\s*)?\n?(.*?)\n?```", _FLAGS)
# ``# Output: ...`` anywhere (a code comment too), up to the next line that opens a fence, or the end of the answer.
_HASH_FIELD = {kind: re.compile(rf"# {kind}:\s*(.*?)(?=\n```|$)", _FLAGS) for kind in ("input", "output", "message")}
# The later fallbacks of the solver answer, in the reference's order: a call, a tag (closed or not), a phrase whose
# value runs to the end of the answer (minus one final period).
_VALUE_FALLBACKS = {
    kind: (
        re.compile(rf"{kind}\s*\((.*?)\)", _FLAGS),
        re.compile(rf"<{kind}>\s*(.*?)(?:</{kind}>|\s*$)", _FLAGS),
        re.compile(rf"the {kind} is\s*(.*?)\.?$", _FLAGS),
    )
    for kind in ("input", "output")
}
_DEF_LINE = re.compile(r"^\s*def\s+\w+\s*\(", re.MULTILINE)
_MESSAGE_TAG = re.compile(r"<message>\s*(.*?)\s*</message>", _FLAGS)
_FORMAT = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
_CLOSED_ANSWER = re.compile(r"<answer>.*?</answer>", re.DOTALL)


class ReferenceReader(CompletionReader):
    """The reference code's reading (its reward manager, ``extract_answer``, ``get_format_reward`` and parsers)."""

    name = "reference"

    def envelope(self, completion: str, require_think: bool, monte_carlo: bool = False) -> Envelope:
        if monte_carlo:
            # The reference decodes a Monte-Carlo response alone: no cut at the next turn, no format verdict.
            return Envelope(False, self._answer(completion))
        # Its generation: from the prompt's ``Assistant:`` (which opened the think) to the next one, stripped of
        # spaces and then of quote characters at both ends.
        text = own_turn((THINK_OPEN if require_think else "") + completion).strip().strip("\"'")
        answer = self._answer(text)
        if answer is None:
            return Envelope(False, None, "missing_answer")
        first = _CLOSED_ANSWER.search(text)
        if first is None:
            return Envelope(False, answer, "unclosed_answer")
        if not require_think:
            return _optional_think(text[: first.start()], answer)
        # The first think block, then the first closed answer; anything may follow.
        if _FORMAT.match(text):
            return Envelope(True, answer)
        return Envelope(False, answer, "missing_think" if THINK_CLOSE not in text else "misordered_tags")

    @staticmethod
    def _answer(text: str) -> str | None:
        """After the last ``<answer>``, up to the next ``</answer>`` (or the end), stripped."""
        if ANSWER_OPEN not in text:
            return None
        return text.split(ANSWER_OPEN)[-1].split(ANSWER_CLOSE)[0].strip()

    def answer_value(self, answer: str, kind: str) -> str:
        """The last ```` ```output ```` block; else the last ``# Output:`` field, ``output(...)`` call or ``<output>``
        tag; else the first "the output is ..." to the end; else the whole answer. Never ``None``."""
        patterns = (_TAGGED_FENCE[_check_kind(kind)], _HASH_FIELD[kind], *_VALUE_FALLBACKS[kind])
        for pattern in patterns:
            matches = list(pattern.finditer(answer))
            if matches:
                return matches[-1].group(1)
        return answer

    def answer_program(self, answer: str) -> str | None:
        matches = list(_PROGRAM_FENCE.finditer(answer))
        return matches[-1].group(1).strip() if matches else None

    def program_and_input(self, answer: str) -> tuple[str | None, str | None]:
        """The first fenced block of any tag (it must hold a ``def`` line) and the first ```` ```input ```` block,
        else a ``# Input:`` field."""
        code = _PROGRAM_FENCE.search(answer)
        given = _TAGGED_FENCE["input"].search(answer) or _HASH_FIELD["input"].search(answer)
        program = code.group(1).strip() if code else None
        if program is not None and not _DEF_LINE.search(program):
            program = None
        return program, (given.group(1).strip() if given else None)

    def inputs_and_message(self, answer: str) -> tuple[list[str], str | None]:
        inputs = [m.group(1).strip() for m in _TAGGED_FENCE["input"].finditer(answer)]
        for pattern in (_TAGGED_FENCE["message"], _MESSAGE_TAG, _HASH_FIELD["message"]):
            found = pattern.search(answer)
            if found:
                return inputs, found.group(1).strip()
        return inputs, None


READERS: dict[str, CompletionReader] = {"reference": ReferenceReader(), "strict": StrictReader()}
ANSWER_EXTRACTIONS: tuple[str, ...] = tuple(READERS)


def get_reader(answer_extraction: str) -> CompletionReader:
    """The reader of an ``answer_extraction`` value (``reference`` or ``strict``)."""
    if answer_extraction not in READERS:
        raise ValueError(f"Unknown answer extraction {answer_extraction!r}: use one of {list(ANSWER_EXTRACTIONS)}.")
    return READERS[answer_extraction]
