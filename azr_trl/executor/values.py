"""Equality of literal values, as answers are checked against outputs. Parent side: literals are parsed, never
evaluated as code.

Outputs and answers are compared as literal *values* (``literal_equal``), never through an object's own ``__eq__``:
both sides come out of ``ast.literal_eval``, so they are plain ints, strings, lists, dicts... The comparison follows
Python's ``==`` on those values (what the reference implementation uses, ``eval(gold) == eval(answer)``) with one
deliberate difference: a bool never equals a number (``True`` vs ``1``, ``False`` vs ``0.0``), because the repr of
the program's output says which one it is and a solver that predicts the other has predicted a different output.
Numbers still compare by value across int/float/complex (``2`` equals ``2.0``), as with ``==``.
"""

from __future__ import annotations

from .checks import MAX_LITERAL_CHARS, parse_literal


__all__ = ["literal_equal", "values_equal"]


def _canonical(value: object) -> object:
    """A hashable form of a literal value in which equal values (by the rule above) are equal, and only those."""
    kind = type(value)
    if kind is bool:
        return ("bool", value)
    if kind in (int, float, complex):
        return ("number", value)
    if kind in (str, bytes):
        return (kind.__name__, value)
    if value is None or value is Ellipsis:
        return (repr(value),)
    if kind is tuple or kind is list:
        return (kind.__name__, tuple(_canonical(item) for item in value))
    if kind is set or kind is frozenset:
        return ("set", frozenset(_canonical(item) for item in value))
    if kind is dict:
        return ("dict", frozenset((_canonical(k), _canonical(v)) for k, v in value.items()))
    raise TypeError(f"not a literal value: {kind.__name__}")


def values_equal(a: object, b: object) -> bool:
    """Compare two values produced by ``ast.literal_eval`` (see the module docstring for the rule)."""
    try:
        return _canonical(a) == _canonical(b)
    except (TypeError, RecursionError):
        return False


def literal_equal(a: str | None, b: str | None, max_chars: int = MAX_LITERAL_CHARS) -> bool:
    """Whether two repr/literal strings denote the same value; ``False`` if either is missing or not a literal."""
    if a is None or b is None:
        return False
    ok_a, value_a = parse_literal(a, max_chars)
    if not ok_a:
        return False
    ok_b, value_b = parse_literal(b, max_chars)
    return ok_b and values_equal(value_a, value_b)
