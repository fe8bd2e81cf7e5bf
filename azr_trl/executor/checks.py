"""Static checks shared by the parent and the sandbox: literal parsing and the banned-module scan.

Standard library only. Nothing here executes model-written code: programs are parsed and compiled, never run, and
``ast.literal_eval`` only builds plain values; callers cap the size of what they pass in.
"""

from __future__ import annotations

import ast
import functools
import opcode
import types
import warnings
from collections.abc import Iterable
from dataclasses import dataclass


MAX_LITERAL_CHARS = 100_000

# Exceptions the parser and ``literal_eval`` raise on hostile text (deep nesting, huge ints, bad syntax...).
_PARSE_ERRORS = (SyntaxError, ValueError, TypeError, MemoryError, RecursionError, OverflowError)

# Calls that import a module named by their first argument.
_DYNAMIC_IMPORTS = ("__import__", "builtins.__import__", "importlib.import_module", "importlib.__import__")
_LOAD_CONST, _IMPORT_NAME, _EXTENDED_ARG = opcode.opmap["LOAD_CONST"], opcode.opmap["IMPORT_NAME"], opcode.EXTENDED_ARG
_LOAD_SMALL_INT = opcode.opmap.get("LOAD_SMALL_INT", -1)  # Python 3.14+ loads an import's level this way
_COMPILE_ERRORS = (SyntaxError, ValueError, TypeError, MemoryError, RecursionError, OverflowError)


@dataclass(frozen=True)
class ProgramCheck:
    """What the parent learns from a program without running it.

    ``verdict`` is ``"syntax_error"`` or ``"banned_import"`` when the program must not run (with ``error``), else
    ``None``; ``code`` is the compiled module code and ``imports`` the modules it imports by statement.
    """

    verdict: str | None
    error: str | None = None
    code: types.CodeType | None = None
    imports: tuple[str, ...] = ()


def might_use_banned(src: str, banned: Iterable[str]) -> bool:
    """Cheap text pre-filter: ``find_banned`` can only report an entry whose every component occurs in the source
    (or a dynamic import), so most programs skip the AST walk."""
    if "__import__" in src or "import_module" in src:
        return True
    for parts in _entry_parts(tuple(banned)):  # plain loops: this runs for every program the parent checks
        for part in parts:
            if part not in src:
                break
        else:
            return True
    return False


@functools.lru_cache(maxsize=16)
def _entry_parts(banned: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(entry.split(".")) for entry in banned)


def check_program(src: str, banned: Iterable[str] = (), check_banned: bool = True) -> ProgramCheck:
    """Compile ``src`` (never run it) and scan it for banned modules.

    Compilation ignores the caller's ``__future__`` flags and never prints warnings; parse failures of any kind
    (deep nesting, null bytes, huge constants) are syntax errors.
    """
    banned = tuple(banned) if check_banned else ()
    # The syntax tree is needed only to look for banned modules, and only when the text could name one: every part of
    # a banned entry occurs in it, or a dynamic import. Identifiers are NFKC-normalised (a full-width ``ｒａｎｄｏｍ``
    # is ``random``), so non-ASCII text always gets the full scan. Which modules a program imports by statement is
    # read off its byte code instead, which is much cheaper than walking the tree.
    needs_tree = bool(banned) and (not src.isascii() or might_use_banned(src, banned))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if needs_tree:
                tree = ast.parse(src, "<program>")
                code = compile(tree, "<program>", "exec", dont_inherit=True, optimize=0)
            else:
                code = compile(src, "<program>", "exec", dont_inherit=True, optimize=0)
    except _COMPILE_ERRORS as err:
        message = err.msg if isinstance(err, SyntaxError) else str(err)
        line = f" (line {err.lineno})" if isinstance(err, SyntaxError) and err.lineno else ""
        return ProgramCheck("syntax_error", f"{type(err).__name__}: {message}{line}"[:300])
    reason = find_banned(tree, banned) if needs_tree else None
    if reason:
        return ProgramCheck("banned_import", f"banned module: {reason}")
    return ProgramCheck(None, code=code, imports=tuple(code_imports(code)) if "import" in src else ())


def arg_nodes(src: str, max_chars: int = MAX_LITERAL_CHARS) -> list[ast.expr] | None:
    """The expression nodes of an argument-list source such as ``"'ab', [1, 2]"``, or ``None`` if it is not one.

    The text is parsed as the argument list of a call, so a trailing comment or a multi-line literal is fine, while
    ``"1), g(2"``, keywords and ``*args`` are rejected.
    """
    if not isinstance(src, str) or len(src) > max_chars:
        return None
    try:
        tree = ast.parse("f(" + src + "\n)", mode="eval")
    except _PARSE_ERRORS:
        return None
    call = tree.body
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name) or call.keywords:
        return None
    if call.func.id != "f" or any(isinstance(arg, ast.Starred) for arg in call.args):
        return None
    return call.args


def keyword_args(src: str, max_chars: int = MAX_LITERAL_CHARS) -> tuple[list[str], list[tuple[str, str]]] | None:
    """An argument list that may name arguments, ``"[1, 2], k=3"`` -> ``(["[1, 2]"], [("k", "3")])``: the source of
    each positional argument and each keyword's name and value source, every value a Python literal; ``None`` when
    the text is no such list (``*args``, ``**kwargs``, a non-literal value) or too long. Nothing is evaluated."""
    if not isinstance(src, str) or len(src) > max_chars:
        return None
    text = "f(" + src + "\n)"
    try:
        tree = ast.parse(text, mode="eval")
    except _PARSE_ERRORS:
        return None
    call = tree.body
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name) or call.func.id != "f":
        return None
    if any(isinstance(arg, ast.Starred) for arg in call.args) or any(k.arg is None for k in call.keywords):
        return None
    names = [k.arg for k in call.keywords]
    if len(set(names)) != len(names):  # a repeated keyword does not compile
        return None
    if literal_args([*call.args, *(k.value for k in call.keywords)]) is None:
        return None
    segment = functools.partial(ast.get_source_segment, text)
    return [segment(arg) for arg in call.args], [(k.arg, segment(k.value)) for k in call.keywords]


def literal_args(nodes: list[ast.expr]) -> tuple | None:
    """Fresh plain values for parsed argument nodes (each call builds new objects), or ``None`` if one is no literal."""
    try:
        return tuple(ast.literal_eval(node) for node in nodes)
    except _PARSE_ERRORS:
        return None


def parse_args(src: str, max_chars: int = MAX_LITERAL_CHARS) -> tuple | None:
    """``"'ab', [1, 2]"`` -> ``('ab', [1, 2])``; ``None`` when the text is not a list of Python literals (or too long)."""
    nodes = arg_nodes(src, max_chars)
    return None if nodes is None else literal_args(nodes)


def parse_literal(src: str, max_chars: int = MAX_LITERAL_CHARS) -> tuple[bool, object]:
    """``(True, value)`` when ``src`` is one Python literal (surrounding whitespace allowed), else ``(False, None)``."""
    if not isinstance(src, str) or len(src) > max_chars:
        return False, None
    try:
        return True, ast.literal_eval(src.strip())
    except _PARSE_ERRORS:
        return False, None


def match_banned(path: str, banned: Iterable[str], dotted_only: bool = False) -> str | None:
    """The banned entry matched by a dotted module/attribute path, or ``None``.

    A single-word entry (``random``) matches any component (``numpy.random`` too), as in the reference; a dotted entry
    (``os.path``) matches a run of consecutive components (``os.path``, ``os.path.join``), which the reference's
    per-component comparison never did.
    """
    parts = path.split(".")
    for entry in banned:
        wanted = entry.split(".")
        if len(wanted) == 1:
            if not dotted_only and entry in parts:
                return entry
            continue
        width = len(wanted)
        if any(parts[i : i + width] == wanted for i in range(len(parts) - width + 1)):
            return entry
    return None


def _attribute_path(node: ast.Attribute) -> tuple[str, list[str]] | None:
    """``a.b.c`` -> ``("a", ["b", "c"])`` when the chain starts at a plain name."""
    attrs: list[str] = []
    current: ast.expr = node
    while isinstance(current, ast.Attribute):
        attrs.append(current.attr)
        current = current.value
    if not isinstance(current, ast.Name):
        return None
    return current.id, attrs[::-1]


def find_banned(tree: ast.AST, banned: Iterable[str]) -> str | None:
    """Why ``tree`` uses a banned module (a short text), or ``None`` when it does not.

    Covers ``import a.b``, ``from a import b`` (checked as ``a.b``), attribute chains on imported names (with their
    aliases resolved, so ``import os as o; o.path.join`` hits ``os.path``) and on plain names for dotted entries, and
    ``__import__`` / ``importlib.import_module`` calls: with a constant name it is checked, with a computed name the
    import is refused because it cannot be checked.
    """
    banned = tuple(banned)
    if not banned:
        return None
    bound: dict[str, str] = {}  # local name -> module path, from import statements
    nodes = list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                hit = match_banned(alias.name, banned)
                if hit:
                    return f"import {alias.name} ({hit})"
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    head = alias.name.split(".")[0]
                    bound[head] = head
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            hit = match_banned(module, banned) if module else None
            if hit:
                return f"from {module} import ... ({hit})"
            for alias in node.names:
                full = f"{module}.{alias.name}" if module else alias.name
                hit = match_banned(full, banned)
                if hit:
                    return f"from {module} import {alias.name} ({hit})"
                bound[alias.asname or alias.name] = full
    for node in nodes:
        if isinstance(node, ast.Attribute):
            chain = _attribute_path(node)
            if chain is None:
                continue
            base, attrs = chain
            if base in bound:
                path = ".".join([bound[base], *attrs])
                hit = match_banned(path, banned)
            else:
                path = ".".join([base, *attrs])
                hit = match_banned(path, banned, dotted_only=True)
            if hit:
                return f"{path} ({hit})"
        elif isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name):
                name = bound.get(node.func.id, node.func.id)
            elif isinstance(node.func, ast.Attribute) and (chain := _attribute_path(node.func)):
                base, attrs = chain
                name = ".".join([bound.get(base, base), *attrs])
            else:
                continue
            if name not in _DYNAMIC_IMPORTS:
                continue
            first = node.args[0] if node.args else None
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                return f"{name} with a computed module name"
            hit = match_banned(first.value, banned)
            if hit:
                return f"{name}({first.value!r}) ({hit})"
    return None


def code_imports(code: types.CodeType, limit: int = 64) -> list[str]:
    """Module names a compiled program imports by statement, nested functions and classes included (``from a import
    b`` gives ``a`` and ``a.b``, since ``b`` may be a submodule; relative imports are skipped), first ``limit``.

    Read off the byte code: every import statement compiles to ``LOAD_CONST level; LOAD_CONST fromlist;
    IMPORT_NAME name``.
    """
    names: list[str] = []
    pending = [code]
    while pending and len(names) < limit:
        current = pending.pop(0)
        raw, consts, co_names = current.co_code, current.co_consts, current.co_names
        level = fromlist = None
        extended = 0
        for i in range(0, len(raw), 2):
            op, arg = raw[i], raw[i + 1] | extended
            if op == _EXTENDED_ARG:
                extended = arg << 8
                continue
            extended = 0
            if op == _LOAD_CONST:
                level, fromlist = fromlist, consts[arg]
            elif op == _LOAD_SMALL_INT:
                level, fromlist = fromlist, arg
            elif op == _IMPORT_NAME:
                name = co_names[arg]
                if level == 0 and name:
                    names.append(name)
                    if isinstance(fromlist, tuple):
                        names.extend(f"{name}.{item}" for item in fromlist if item != "*")
        pending.extend(const for const in consts if isinstance(const, types.CodeType))
    return list(dict.fromkeys(names))[:limit]
