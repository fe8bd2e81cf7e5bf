"""Seed tasks: seed files (JSONL) (the zero tasks are in :mod:`azr_trl.tasks.task`); the loop that has a model write seeds is in
:mod:`azr_trl.seeding.generation`.

Seed-file rows use the schema of ``azr-trl validate``: ``program`` + ``input`` for a deduction/abduction triplet (it
goes to both buffers unless the row names one ``task_type``), or ``program`` + ``inputs`` (+ ``message``) for an
induction item. ``output``/``outputs`` are optional; when present they must match what the executor computes. Every
row is re-validated through the executor on load.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..jsonl import read_jsonl
from ..tasks import TASK_TYPES, Task, get_task_spec, run_validation


# Hand-written seeds shipped with the package (``seed_files: [builtin]``): 24 triplets and 6 induction items of short,
# varied programs, so a small model's first steps see more than the identity function.
DATA_DIR = Path(__file__).resolve().parents[1] / "data"
BUILTIN_SEED_FILES: tuple[str, ...] = ("seed_tasks.jsonl", "seed_induction.jsonl")

# ----------------------------------------------------------------------------------------------------------------------
# Seed files


def resolve_seed_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Seed-file paths with the alias ``builtin`` expanded to the files shipped in ``azr_trl/data``."""
    out: list[Path] = []
    for path in paths:
        if str(path) == "builtin":
            out += [DATA_DIR / name for name in BUILTIN_SEED_FILES]
        else:
            out.append(Path(path))
    return out


def row_to_candidates(row: dict[str, Any], task_types: Sequence[str] = TASK_TYPES) -> list[Task] | str:
    """The candidate tasks of one seed row (one per buffer it goes to), or an error string."""
    program = row.get("program")
    if not isinstance(program, str) or not program.strip():
        return "missing or empty 'program' (a string)"
    task_type = row.get("task_type")
    # Null / empty fields count as absent, so full-schema rows (e.g. a datasets export) load too.
    has_input, has_inputs = row.get("input") is not None, row.get("inputs") not in (None, [])
    if has_input and has_inputs:
        return "a row has either 'input' (a triplet) or 'inputs' (an induction item), not both"
    if has_input:
        if not isinstance(row["input"], str):
            return "'input' must be a string: the argument list of one call, e.g. \"'ab', [1, 2]\""
        types = [t for t in ("deduction", "abduction") if t in task_types]
        if task_type is not None:
            if task_type not in ("deduction", "abduction"):
                return f"task_type {task_type!r} does not match a row with 'input' (deduction or abduction)"
            types = [task_type] if task_type in task_types else []
        return [Task(task_type=t, program=program, input=row["input"], pinned=True) for t in types]
    if has_inputs:
        inputs = row["inputs"]
        if not isinstance(inputs, list) or len(inputs) < 2 or not all(isinstance(s, str) for s in inputs):
            return "'inputs' must be a list of at least 2 strings (argument lists)"
        if task_type not in (None, "induction"):
            return f"task_type {task_type!r} does not match a row with 'inputs' (induction)"
        message = row.get("message") or ""
        if not isinstance(message, str):
            return "'message' must be a string"
        if "induction" not in task_types:
            return []
        return [Task(task_type="induction", program=program, inputs=list(inputs), message=message, pinned=True)]
    return "a row needs 'input' (a triplet) or 'inputs' (an induction item)"


def _stored_mismatch(row: dict[str, Any], task: Task) -> str | None:
    from azr_trl.executor import literal_equal

    if task.task_type != "induction":
        stored = row.get("output")
        if stored is not None and not (isinstance(stored, str) and literal_equal(stored, task.output or "")):
            return f"stored output {stored!r} differs from the executor's {task.output!r}"
        return None
    stored = row.get("outputs")
    if stored is None:
        return None
    if not isinstance(stored, list) or len(stored) != len(task.outputs):
        return "stored 'outputs' do not match the inputs"
    for i, (a, b) in enumerate(zip(stored, task.outputs, strict=True)):
        if not (isinstance(a, str) and literal_equal(a, b)):
            return f"stored outputs[{i}] {a!r} differs from the executor's {b!r}"
    return None


def load_seed_file(
    path: str | os.PathLike,
    executor: Any,
    task_types: Sequence[str] = TASK_TYPES,
    progress: bool = False,
) -> tuple[list[Task], list[str]]:
    """Read and re-validate a JSONL seed file in one executor batch.

    Returns ``(tasks, errors)``: pinned step-0 tasks for the requested ``task_types`` (a triplet row yields one task
    per deduction/abduction buffer), and one ``"path:line: problem"`` string per rejected row. Raises
    ``FileNotFoundError``/``ValueError`` only when the file itself cannot be read.
    """
    errors: list[str] = []
    items: list[tuple[Any, Task]] = []
    origin: list[tuple[int, dict[str, Any]]] = []
    specs = {t: get_task_spec(t) for t in TASK_TYPES}
    for number, row in read_jsonl(path):
        candidates = row if isinstance(row, str) else row_to_candidates(row, task_types)
        if isinstance(candidates, str):
            errors.append(f"{path}:{number}: {candidates}")
            continue
        for candidate in candidates:
            items.append((specs[candidate.task_type], candidate))
            origin.append((number, row))
    # Triplet rows become two candidates with the same program and input: run each distinct job once.
    unique: dict[tuple[str, str, tuple[str, ...]], int] = {}
    for i, (_, cand) in enumerate(items):
        unique.setdefault((cand.program, cand.input or "", tuple(cand.inputs)), i)
    first = sorted(set(unique.values()))
    validated = dict(zip(first, run_validation(executor, [items[i] for i in first], progress), strict=True))
    tasks: list[Task] = []
    reported: set[int] = set()
    for i, (_, cand) in enumerate(items):
        number, row = origin[i]
        task, verdict, detail = validated[unique[(cand.program, cand.input or "", tuple(cand.inputs))]]
        if task is None:
            problem = f"invalid task: {verdict}" + (f" ({detail})" if detail else "")
        else:
            problem = _stored_mismatch(row, task)
        if problem is not None:
            if number not in reported:
                errors.append(f"{path}:{number}: {problem}")
                reported.add(number)
            continue
        tasks.append(Task(**{**task.to_dict(), "task_type": cand.task_type, "pinned": True, "step": 0}))
    return tasks, errors
