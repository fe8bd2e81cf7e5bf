"""JSON input: JSON-lines files read with line numbers, so every bad row can be reported where it is, and settings
given as a JSON object on the command line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def iter_jsonl(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """``(line number, row)`` for every non-blank line; a line that is not a JSON object gives an error string."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            yield number, f"malformed JSON ({err.msg} at column {err.colno})"
            continue
        yield number, row if isinstance(row, dict) else f"expected a JSON object, got {type(row).__name__}"


def read_jsonl(path: str | os.PathLike) -> list[tuple[int, dict[str, Any] | str]]:
    """:func:`iter_jsonl` over a UTF-8 file; raises ``FileNotFoundError``/``ValueError`` naming an unreadable file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read {path}: {err}") from None
    return list(iter_jsonl(text.splitlines()))


def parse_json_object(value: Any, name: str) -> dict | None:
    """A setting that may arrive as a JSON string (the command line) or already as a dict; ``None`` stays ``None``.
    ``ValueError`` naming the setting when the text is not JSON or not an object."""
    if value is None or isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise ValueError(f"{name} is not valid JSON ({err}): give an object such as '{{}}'") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"{name} must be a JSON object, got {value!r}")
    return parsed
