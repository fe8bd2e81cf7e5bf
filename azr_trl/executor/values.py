"""Equality of literal values, as answers are checked against outputs, and the form gold outputs are kept in. Parent
side: literals are parsed, never evaluated as code.

Outputs and answers are compared as literal *values* (``literal_equal``), never through an object's own ``__eq__``:
both sides come out of ``ast.literal_eval``, so they are plain ints, strings, lists, dicts... The comparison follows
Python's ``==`` on those values (what the reference implementation uses, ``eval(gold) == eval(answer)``), under one of
two rules (``VALUE_EQUALITIES``, the ``value_equality`` setting):

- ``typed``: a bool never equals a number (``True`` vs ``1``, ``False`` vs ``0.0``), because the repr of the program's
  output says which one it is and a solver that predicts the other has predicted a different output;
- ``python``: exactly ``==`` on the two literals, so ``True == 1`` and ``[False] == [0]`` as in the reference.

Numbers compare by value across int/float/complex (``2`` equals ``2.0``) under both; so do a set and a frozenset.
"""

from __future__ import annotations

from .checks import MAX_LITERAL_CHARS, parse_literal


__all__ = ["VALUE_EQUALITIES", "literal_equal", "truncate_output", "values_equal"]

VALUE_EQUALITIES: tuple[str, ...] = ("typed", "python")


def _canonical(value: object, bool_is_number: bool) -> object:
    """A hashable form of a literal value in which equal values (by the rule above) are equal, and only those."""
    kind = type(value)
    if kind is bool and not bool_is_number:
        return ("bool", value)
    if kind in (bool, int, float, complex):
        return ("number", value)  # True == 1 and hash(True) == hash(1): equal as Python's == has them
    if kind in (str, bytes):
        return (kind.__name__, value)
    if value is None or value is Ellipsis:
        return (repr(value),)
    if kind is tuple or kind is list:
        return (kind.__name__, tuple(_canonical(item, bool_is_number) for item in value))
    if kind is set or kind is frozenset:
        return ("set", frozenset(_canonical(item, bool_is_number) for item in value))
    if kind is dict:
        return (
            "dict",
            frozenset((_canonical(k, bool_is_number), _canonical(v, bool_is_number)) for k, v in value.items()),
        )
    raise TypeError(f"not a literal value: {kind.__name__}")


def _check_equality(equality: str) -> bool:
    """Whether ``equality`` lets a bool equal a number; raises on an unknown rule."""
    if equality not in VALUE_EQUALITIES:
        raise ValueError(f"value_equality={equality!r}: use one of {list(VALUE_EQUALITIES)}.")
    return equality == "python"


def values_equal(a: object, b: object, equality: str = "typed") -> bool:
    """Compare two values produced by ``ast.literal_eval`` under ``equality`` (see the module docstring)."""
    bool_is_number = _check_equality(equality)
    try:
        return _canonical(a, bool_is_number) == _canonical(b, bool_is_number)
    except (TypeError, RecursionError):
        return False


def literal_equal(a: str | None, b: str | None, max_chars: int = MAX_LITERAL_CHARS, equality: str = "typed") -> bool:
    """Whether two repr/literal strings denote the same value; ``False`` if either is missing or not a literal."""
    _check_equality(equality)
    if a is None or b is None:
        return False
    ok_a, value_a = parse_literal(a, max_chars)
    if not ok_a:
        return False
    ok_b, value_b = parse_literal(b, max_chars)
    return ok_b and values_equal(value_a, value_b, equality)


def truncate_output(output: str, max_chars: int) -> str:
    """A gold output as the reference's executor keeps it: longer than ``max_chars`` (> 0), its first and last
    ``max_chars // 2`` characters joined by ``...``; ``max_chars`` 0 keeps it whole.

    The cut text is rarely a value (``[0, 1, 4...]``), so no answer matches it and such a task cannot be solved; a long
    string stays a string (``'aaa...aaa'``), which an answer must then equal.
    """
    if max_chars < 0:
        raise ValueError(f"truncate_outputs={max_chars}: use 0 (keep outputs whole) or a positive length.")
    if not max_chars or len(output) <= max_chars:
        return output
    half = max_chars // 2
    return output[:half] + "..." + output[-half:]
