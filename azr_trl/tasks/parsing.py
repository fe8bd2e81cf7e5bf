"""Checking what a completion holds: program clean-up, literal inputs, and the normal forms used for dedup.

Where those parts are in a completion is :mod:`azr_trl.tasks.reading`'s concern. Nothing here executes model text.
Programs are only parsed (``ast.parse``/``tokenize``); inputs are parsed as Python literals by the executor's
size-capped ``parse_args``.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass


# Programs and inputs beyond these sizes are rejected before any parsing (ast.parse of huge text is slow).
MAX_PROGRAM_CHARS = 20_000
MAX_INPUT_CHARS = 5_000
# Real programs nest a few dozen levels; deeper ASTs are hostile to every recursive tool that reads them.
MAX_AST_DEPTH = 100

_CALL_WRAPPER = re.compile(r"^f\s*\((.*)\)$", re.DOTALL)
# Every ``def name(`` line, nested functions and methods included (where ``entry_rename: text`` looks for the entry).
_DEF_NAME = re.compile(r"^\s*def\s+(\w+)\s*\(", re.MULTILINE)
# The text the reference's executor refuses to run, anywhere in a program (``reject_input_calls``).
INPUT_CALL = "input("
ENTRY_RENAMES: tuple[str, ...] = ("token", "text")


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
    ``rename_by``: ``"token"`` renames a top-level function as an identifier (not after a dot, not in strings);
    ``"text"`` does what the reference's regex does: when no ``def f`` exists anywhere, the last (or first) ``def``
    anywhere, nested functions and methods included, is renamed at every ``def name(`` and every ``name(`` of the
    text, so ``s.count(ch)`` becomes ``s.f(ch)`` when the function is ``count``.
    ``reject_input_calls``: refuse a program whose text contains ``input(`` anywhere (``input_call``), as the
    reference's executor does.
    """

    rename_entry: str | None = "last"
    reject_multiple_functions: bool = False
    strip_top_level_code: bool = True
    max_chars: int = MAX_PROGRAM_CHARS
    rename_by: str = "token"
    reject_input_calls: bool = False


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
    ``program_too_deep``, ``no_entry_function``, ``multiple_functions``, ``input_call``.
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
    if options.rename_by == "text":
        code, error = _rename_by_text(code, options.rename_entry)
        if code is None:
            return None, error
        tree, error = _parse_checked(code)
        if tree is None:
            return None, error
        names = ["f"]  # whether an `f` can be called is the executor's verdict, as in the reference
    else:
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
    if options.reject_input_calls and INPUT_CALL in code:
        return None, "input_call"
    return code.rstrip() + "\n", None


def _rename_by_text(code: str, rename_entry: str | None) -> tuple[str | None, str | None]:
    """``rename_by="text"``: the program with its entry renamed as the reference's regex renames it (see
    :class:`ProgramOptions`), or ``(None, error)``."""
    names = _DEF_NAME.findall(code)
    if not names:
        return None, "no_entry_function"
    if "f" in names:
        return code, None
    if rename_entry not in ("last", "first"):
        return None, "no_entry_function"
    old = re.escape(names[-1] if rename_entry == "last" else names[0])
    code = re.sub(rf"def\s+{old}\s*\(", "def f(", code)
    return re.sub(rf"\b{old}\s*\(", "f(", code), None


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


def import_lines(program: str) -> list[str]:
    """Every import statement of ``program``, nested ones included, as one line each (``from m import a as b``).

    The reference puts these lines of the gold program above an induction answer before running it, so an answer that
    uses ``math`` without importing it still runs.
    """
    tree = parse_program(program)
    if tree is None:
        return []
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in node.names)
            if isinstance(node, ast.Import):
                lines.append(f"import {names}")
            else:
                lines.append(f"from {'.' * node.level}{node.module or ''} import {names}")
    return lines


# ----------------------------------------------------------------------------------------------------------------------
# Inputs


def _parse_args(src: str) -> tuple | None:
    from azr_trl.executor import parse_args  # the executor owns literal parsing (size caps, no eval)

    return parse_args(src)


def prepare_input(
    text: str, keep_call: bool = False, pasted: bool = False, reject_input_calls: bool = False
) -> tuple[str | None, str | None]:
    """Check that ``text`` is the argument list of one call: Python literals separated by commas.

    A wrapping ``f(...)`` call is unwrapped, or with ``keep_call`` kept around the checked arguments (``f(args)``,
    which runs as ``f(f(args))``, see :func:`~azr_trl.tasks.base.call_job`). ``pasted`` (a proposal's input under
    ``pasted_inputs``): the text is taken as the reference pastes it into ``f(...)``: arguments may be named or be
    expressions (``xs=[3, 1]``, ``[1] + [2]``), and it must paste (:func:`pastes_into_call`; a trailing ``# comment``
    does not).
    ``reject_input_calls``: a text containing ``input(`` is refused, as the reference's executor refuses it. Returns
    ``(input, None)`` with the stripped source text, or ``(None, error)`` with ``error`` one of ``empty_input``,
    ``input_too_long``, ``invalid_input``, ``input_comment``, ``input_call``.
    """
    written = src = text.strip()
    inner = unwrap_call(src)
    if inner is not None:
        src = inner
    if not src:
        return None, "empty_input"
    if len(src) > MAX_INPUT_CHARS:
        return None, "input_too_long"
    args = _parse_args(src)
    if not args and not (pasted and _pastes_as_arguments(src)):  # None (not literals) or () (f needs an argument)
        return None, "invalid_input"
    if pasted and not pastes_into_call(written):
        return None, "input_comment"
    if reject_input_calls and INPUT_CALL in written:
        return None, "input_call"
    return (f"f({src})" if keep_call and inner is not None else src), None


def _pastes_as_arguments(src: str) -> bool:
    """Whether ``f(<src>)`` reads as one call with at least one argument, whatever the arguments (``xs=[3, 1]``,
    ``[1] + [2]``): what the reference takes as an input (``pasted``). Only parsed here; such an input runs pasted into
    its program, in the sandbox (:func:`~azr_trl.tasks.base.call_job`)."""
    try:
        call = ast.parse("f(" + src + "\n)", mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    named_f = isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "f"
    return named_f and bool(call.args or call.keywords)


def pastes_into_call(text: str) -> bool:
    """Whether ``f(<text>)`` parses with the closing parenthesis right after the text: how the reference pastes an
    input into its programs. A trailing ``# comment`` hides the parenthesis; line breaks inside the call are fine."""
    if len(text) > MAX_INPUT_CHARS:
        return False
    try:
        ast.parse("f(" + text + ")", mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def grades_on_one_line(text: str) -> bool:
    """Whether an input text can be graded as the reference grades it: it pastes the text into the last line of a
    program (``gold == f(<text>)``) and evaluates that line alone, so the text must not break the line and must
    paste into the call (:func:`pastes_into_call`)."""
    return "\n" not in text and pastes_into_call(text)


def unwrap_call(text: str) -> str | None:
    """The argument text of an answer written as a call, ``f(...)``; ``None`` when it is not one."""
    match = _CALL_WRAPPER.match(text.strip())
    return match.group(1).strip() if match else None


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
