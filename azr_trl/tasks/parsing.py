"""Reading model completions: the think/answer envelope, fenced blocks, program clean-up and literal inputs.

Nothing here executes model text. Programs are only parsed (``ast.parse``/``tokenize``); inputs are parsed as Python
literals by the executor's size-capped ``parse_args``.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass


THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"

# Programs and inputs beyond these sizes are rejected before any parsing (ast.parse of huge text is slow).
MAX_PROGRAM_CHARS = 20_000
MAX_INPUT_CHARS = 5_000
# Real programs nest a few dozen levels; deeper ASTs are hostile to every recursive tool that reads them.
MAX_AST_DEPTH = 100

# Fence tags that name the content of a block; anything else on the opening line is treated as content.
_KNOWN_TAGS = re.compile(r"(?i)^(python3?|py|input(_\d+)?|output(_\d+)?|message)$")
_STRICT_ENVELOPE = re.compile(r"\s*<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
_CALL_WRAPPER = re.compile(r"^f\s*\((.*)\)$", re.DOTALL)


@dataclass(frozen=True)
class Envelope:
    """The ``<think>``/``<answer>`` structure of one completion.

    ``answer`` is the text after the last ``<answer>`` up to the next ``</answer>`` (or the end of the text when it is
    unclosed), extracted even when the format is wrong so callers can still look at it (e.g. Monte-Carlo rollouts).
    """

    format_ok: bool
    answer: str | None
    error: str | None = None


@dataclass(frozen=True)
class Block:
    """One fenced block: ``tag`` is the lower-cased language tag (``""`` when absent)."""

    tag: str
    body: str


def last_answer(text: str) -> str | None:
    """Content of the last ``<answer>`` (to the end of ``text`` if it is not closed), or ``None``."""
    start = text.rfind(ANSWER_OPEN)
    if start < 0:
        return None
    start += len(ANSWER_OPEN)
    end = text.find(ANSWER_CLOSE, start)
    return text[start:] if end < 0 else text[start:end]


def read_envelope(completion: str, require_think: bool) -> Envelope:
    """Check the think/answer tags of a completion and extract the answer.

    With ``require_think`` the completion must be ``<think> ... </think> <answer> ... </answer>`` (trailing text
    allowed). The ``r1`` prompt ends inside an open ``<think>``, so a completion that does not start with ``<think>``
    is read as if it did: the model only has to close it. Without ``require_think`` a ``<think>`` block is optional,
    but when one is opened it must be closed before the final ``<answer>``.
    """
    answer = last_answer(completion)
    answer_at = completion.rfind(ANSWER_OPEN)
    if answer_at < 0:
        return Envelope(False, None, "missing_answer")
    if completion.find(ANSWER_CLOSE, answer_at) < 0:
        return Envelope(False, answer, "unclosed_answer")
    if require_think:
        text = completion if completion.lstrip().startswith(THINK_OPEN) else THINK_OPEN + completion
        if THINK_CLOSE not in text:
            return Envelope(False, answer, "missing_think")
        if not _STRICT_ENVELOPE.match(text):
            return Envelope(False, answer, "misordered_tags")
        return Envelope(True, answer)
    before = completion[:answer_at]
    think_at = before.find(THINK_OPEN)
    if think_at >= 0 and before.find(THINK_CLOSE, think_at) < 0:
        return Envelope(False, answer, "unclosed_think")
    return Envelope(True, answer)


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
# Solver answers (deduction / abduction)

ANSWER_EXTRACTIONS: tuple[str, ...] = ("reference", "strict")

_FIELD_LINE = {
    kind: re.compile(rf"(?im)^[ \t]*(?:#+[ \t]*)?{kind}[ \t]*:[ \t]*(.*?)(?=\n[ \t]*\n|\n```|\Z)", re.DOTALL)
    for kind in ("input", "output")
}
_FIELD_TAG = {kind: re.compile(rf"(?is)<{kind}>\s*(.*?)\s*(?:</{kind}>|\Z)") for kind in ("input", "output")}
_FIELD_PHRASE = {kind: re.compile(rf"(?im)\bthe {kind} is\b[ \t]*:?(.*)$") for kind in ("input", "output")}


def _clean_inline(text: str) -> str:
    """Strip the decoration around a value written in prose: spaces, one pair of backticks, a final period."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "`":
        text = text.strip("`").strip()
    if text.endswith(".") and not text.endswith(".."):
        text = text[:-1].rstrip()
    return text


def extract_answer_value(answer: str, kind: str, extraction: str = "reference") -> str | None:
    """The ``input`` or ``output`` value inside the text of an ``<answer>``, or None when there is none.

    ``strict``: the last fenced block tagged ``kind`` only. ``reference`` (the reference code's solver parser, the
    default): the last such block; else an ``Input:``/``Output:`` line (``#`` optional, up to a blank line or a
    fence); else an ``<input>``/``<output>`` tag; else "the input/output is ...", the last one in the text; else the
    whole answer text. In ``reference`` mode a well formatted answer therefore always yields a value to grade.
    """
    if kind not in ("input", "output"):
        raise ValueError(f"kind must be 'input' or 'output', got {kind!r}.")
    if extraction not in ANSWER_EXTRACTIONS:
        raise ValueError(f"Unknown answer extraction {extraction!r}: use one of {list(ANSWER_EXTRACTIONS)}.")
    blocks = blocks_with_tag(fenced_blocks(answer), kind)
    if blocks:
        return blocks[-1].body.strip()
    if extraction == "strict":
        return None
    for pattern in (_FIELD_LINE[kind], _FIELD_TAG[kind], _FIELD_PHRASE[kind]):
        matches = [m.group(1) for m in pattern.finditer(answer) if _clean_inline(m.group(1))]
        if matches:
            return _clean_inline(matches[-1])
    return answer.strip()


# ----------------------------------------------------------------------------------------------------------------------
# Programs


@dataclass(frozen=True)
class ProgramOptions:
    """How a model-written program is cleaned before validation.

    ``rename_entry``: when no top-level ``def f`` exists, rename the ``"last"`` (reference ``any_last``) or ``"first"``
    (reference ``not_first``) top-level function to ``f``; ``None`` rejects the program instead.
    ``reject_multiple_functions``: reject any program with more than one ``def`` anywhere, nested helpers and methods
    included (the reference's Qwen2.5 setting; it contradicts the prompt, so it is off by default).
    ``strip_top_level_code``: drop top-level expression statements (example calls, prints) and
    ``if __name__ == "__main__":`` blocks, which are not part of the task and would run at import.
    """

    rename_entry: str | None = "last"
    reject_multiple_functions: bool = False
    strip_top_level_code: bool = True
    max_chars: int = MAX_PROGRAM_CHARS


def _depth(tree: ast.AST) -> int:
    """Nesting depth of an AST, computed without recursion."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def parse_program(source: str) -> ast.Module | None:
    """The module's AST, or None if it does not parse or nests deeper than :data:`MAX_AST_DEPTH`.

    Deep trees (``return ------...x``) parse fine but break every recursive consumer afterwards (``ast.dump``, radon,
    complexipy), so they are rejected here, once.
    """
    return _parse_checked(source)[0]


def _parse_checked(source: str) -> tuple[ast.Module | None, str | None]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None, "syntax_error"
    if _depth(tree) > MAX_AST_DEPTH:
        return None, "program_too_deep"
    return tree, None


def _rename(source: str, old: str, new: str) -> str | None:
    """Rename every identifier token ``old`` to ``new`` (not attribute names after a dot), keeping the layout."""
    lines = source.splitlines(keepends=True)
    spots: list[tuple[int, int]] = []
    previous = None
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.NAME and token.string == old and previous != ".":
                spots.append(token.start)
            if token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
                previous = token.string
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None
    for row, col in reversed(spots):
        line = lines[row - 1]
        lines[row - 1] = line[:col] + new + line[col + len(old) :]
    return "".join(lines)


def _is_main_guard(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and any(
        isinstance(n, ast.Name) and n.id == "__name__" for n in ast.walk(node.test)
    )


def _strip_top_level_code(source: str, tree: ast.Module) -> str:
    drop = [n for n in tree.body if isinstance(n, ast.Expr) or _is_main_guard(n)]
    if not drop:
        return source
    keep_lines: set[int] = set()
    for node in tree.body:
        if node not in drop:
            keep_lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    lines = source.splitlines(keepends=True)
    removed: set[int] = set()
    for node in drop:
        span = set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        if not span & keep_lines:  # never cut a line shared with a kept statement (``x = 1; print(x)``)
            removed |= span
    return "".join(line for i, line in enumerate(lines, start=1) if i not in removed).rstrip() + "\n"


def prepare_program(code: str, options: ProgramOptions = ProgramOptions()) -> tuple[str | None, str | None]:
    """Clean a proposed program so that its entry function is a top-level ``f``.

    Returns ``(program, None)`` or ``(None, error)`` with ``error`` one of ``program_too_long``, ``syntax_error``,
    ``program_too_deep``, ``no_entry_function``, ``multiple_functions``.
    """
    code = code.strip("\n")
    if len(code) > options.max_chars:
        return None, "program_too_long"
    tree, error = _parse_checked(code)
    if tree is None:
        return None, error
    if options.reject_multiple_functions:
        n_defs = sum(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) for n in ast.walk(tree))
        if n_defs > 1:
            return None, "multiple_functions"
    names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    if not names:
        return None, "no_entry_function"
    if "f" not in names:
        if options.rename_entry not in ("last", "first"):
            return None, "no_entry_function"
        old = names[-1] if options.rename_entry == "last" else names[0]
        renamed = _rename(code, old, "f")
        tree = parse_program(renamed) if renamed is not None else None
        if tree is None:
            return None, "syntax_error"
        code = renamed
    if options.strip_top_level_code:
        code = _strip_top_level_code(code, tree)
        if parse_program(code) is None:  # defensive: stripping whole statements keeps the module valid
            return None, "syntax_error"
    return code.rstrip() + "\n", None


def program_shape(program: str) -> str:
    """The program's AST without positions and docstrings: equal for programs that differ only in layout/comments."""
    tree = parse_program(program)
    if tree is None:  # unparsable or too deep: the text itself is the best identity there is
        return program.strip()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False)


# ----------------------------------------------------------------------------------------------------------------------
# Inputs


def _parse_args(src: str) -> tuple | None:
    from azr_trl.executor import parse_args  # the executor owns literal parsing (size caps, no eval)

    return parse_args(src)


def prepare_input(text: str) -> tuple[str | None, str | None]:
    """Check that ``text`` is the argument list of one call: Python literals separated by commas.

    A wrapping ``f(...)`` call is unwrapped. Returns ``(input, None)`` with the stripped source text, or ``(None,
    error)`` with ``error`` one of ``empty_input``, ``input_too_long``, ``invalid_input``.
    """
    src = text.strip()
    match = _CALL_WRAPPER.match(src)
    if match:
        src = match.group(1).strip()
    if not src:
        return None, "empty_input"
    if len(src) > MAX_INPUT_CHARS:
        return None, "input_too_long"
    args = _parse_args(src)
    if not args:  # None (not literals) or () (no argument: f needs at least one)
        return None, "invalid_input"
    return src, None


def canonical_repr(value: object) -> str:
    """``repr`` with set elements sorted, so equal literals give equal text in every process.

    A set's iteration order depends on string hashing, which is randomised per process (``PYTHONHASHSEED``); ranks
    must still compute identical dedup keys.
    """
    if isinstance(value, set | frozenset):
        items = sorted(canonical_repr(v) for v in value)
        if not items:
            return "set()" if isinstance(value, set) else "frozenset()"
        body = "{" + ", ".join(items) + "}"
        return body if isinstance(value, set) else f"frozenset({body})"
    if isinstance(value, tuple):
        inner = ", ".join(canonical_repr(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(canonical_repr(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{canonical_repr(k)}: {canonical_repr(v)}" for k, v in value.items()) + "}"
    return repr(value)


def input_shape(src: str) -> str:
    """A normal form of an argument list: the canonical repr of its parsed literal tuple (stripped text if invalid)."""
    args = _parse_args(src)
    return src.strip() if args is None else canonical_repr(args)
