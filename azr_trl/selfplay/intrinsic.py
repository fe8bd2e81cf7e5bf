"""Intrinsic proposer rewards from the reference implementation, all off by default.

Each enabled reward adds ``min(coef * value, max)`` to (or multiplies) the learnability reward of a valid proposal;
:mod:`azr_trl.selfplay.rewards` does the combining. This module computes the raw values, in one batch helper, only for the
rewards that are enabled, and only by parsing programs (radon and complexipy read the source; nothing is executed).

Names and what they measure:
- ``complexity`` (deduction/abduction): cognitive complexity of the program (complexipy) / 15;
- ``halstead`` (deduction/abduction): ``0.5 min(effort/10^4, 1) + 0.3 min(max cyclomatic/10, 1) +
  0.2 min(volume/500, 1)`` (radon);
- ``mean_edit_distance`` (deduction/abduction): mean over the K references of ``1 - difflib ratio`` between the
  programs' position-free AST dumps;
- ``answer_diversity`` (deduction: the output; abduction: the input): surprise ``1 - count(value) / total`` of the
  proposal's answer among the values already in the buffer (1 when unseen);
- ``input_diversity`` / ``output_diversity`` (induction): mean surprise of the N inputs / outputs.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..jsonl import parse_json_object
from ..tasks.parsing import input_shape, parse_program, program_shape
from ..tasks.task import Task


INTRINSIC_NAMES: tuple[str, ...] = (
    "complexity",
    "mean_edit_distance",
    "halstead",
    "answer_diversity",
    "input_diversity",
    "output_diversity",
)
# difflib is quadratic in the worst case: compare at most this much of each AST dump.
_MAX_DUMP_CHARS = 6000


@dataclass(frozen=True)
class IntrinsicSpec:
    """One enabled intrinsic reward: its contribution is ``min(coef * value, max)``."""

    coef: float
    max: float = float("inf")


def parse_intrinsic_config(value: Any) -> dict[str, IntrinsicSpec]:
    """Read the ``intrinsic_rewards`` setting: ``None``, a dict, or its JSON string.

    Each entry is ``name: {"coef": c, "max": m}`` (or ``name: c``). Entries with ``coef == 0`` are dropped, so only
    enabled rewards are ever computed.
    """
    if value is None or value == "" or value == {}:
        return {}
    if isinstance(value, str):
        value = parse_json_object(value, "intrinsic_rewards")
    if not isinstance(value, Mapping):
        raise ValueError(f"intrinsic_rewards must be a mapping of reward name to {{coef, max}}, got {value!r}.")
    specs: dict[str, IntrinsicSpec] = {}
    for name, entry in value.items():
        if isinstance(entry, IntrinsicSpec):
            spec = entry
        elif isinstance(entry, int | float):
            spec = IntrinsicSpec(float(entry))
        elif isinstance(entry, Mapping) and set(entry) <= {"coef", "max"} and "coef" in entry:
            spec = IntrinsicSpec(float(entry["coef"]), float(entry.get("max", float("inf"))))
        else:
            raise ValueError(f'intrinsic_rewards[{name!r}] must be {{"coef": c, "max": m}}, got {entry!r}.')
        if name not in INTRINSIC_NAMES:
            raise ValueError(f"Unknown intrinsic reward {name!r}: use one of {list(INTRINSIC_NAMES)}.")
        if spec.coef != 0:
            specs[name] = spec
    return specs


# ----------------------------------------------------------------------------------------------------------------------
# Metrics


def cognitive_complexity(program: str) -> float | None:
    """complexipy's cognitive complexity of the whole program, or None when it cannot be analysed."""
    from complexipy import code_complexity

    try:
        return float(code_complexity(program).complexity)
    except Exception:  # complexipy raises on code it cannot parse
        return None


def halstead_score(program: str) -> float | None:
    """The reference's Halstead/cyclomatic blend in [0, 1], from radon."""
    from radon.complexity import cc_visit
    from radon.metrics import h_visit

    try:
        total = h_visit(program).total
        blocks = cc_visit(program)
    except Exception:  # radon re-raises the SyntaxError of unparsable code
        return None
    max_cc = max((b.complexity for b in blocks), default=0)
    return 0.5 * min(total.effort / 10_000, 1.0) + 0.3 * min(max_cc / 10, 1.0) + 0.2 * min(total.volume / 500, 1.0)


def mean_edit_distance(program: str, references: Sequence[str]) -> float | None:
    """Mean ``1 - SequenceMatcher.ratio`` between the AST dumps of ``program`` and each reference program."""
    if not references:
        return None
    mine = program_shape(program)[:_MAX_DUMP_CHARS]
    distances = [
        1.0 - difflib.SequenceMatcher(None, mine, program_shape(ref)[:_MAX_DUMP_CHARS], autojunk=False).ratio()
        for ref in references
    ]
    return sum(distances) / len(distances)


def surprise(value: str, counts: Counter, total: int | None = None) -> float:
    """``1 - count(value) / total``; 1.0 when the value was never seen (or nothing was)."""
    total = sum(counts.values()) if total is None else total
    if total <= 0:
        return 1.0
    return 1.0 - counts.get(value, 0) / total


def _value_counts(tasks: Sequence[Task], field: str) -> Counter:
    counts: Counter = Counter()
    for t in tasks:
        if field == "input":
            values = [t.input] if t.input is not None else t.inputs
            counts.update(input_shape(v) for v in values)
        else:
            values = [t.output] if t.output is not None else t.outputs
            counts.update(v.strip() for v in values)
    return counts


def _population(task_type: str, field: str, references: Sequence[Task], buffer: Any) -> Counter:
    if buffer is not None and hasattr(buffer, "value_counts"):
        return buffer.value_counts(task_type, field)
    return _value_counts(references, field)


def compute_intrinsic(
    tasks: Sequence[Task | None],
    references: Sequence[Sequence[Task]],
    config: Any,
    buffer: Any = None,
) -> list[dict[str, float]]:
    """Raw intrinsic values for each valid proposal (``{}`` for ``None`` entries and when nothing is enabled).

    Args:
        tasks: the validated proposals (``None`` for invalid ones).
        references: for each proposal, the reference tasks its prompt showed.
        config: an object with an ``intrinsic_rewards`` attribute (e.g. ``AZRConfig``), or the setting itself.
        buffer: the :class:`~azr_trl.selfplay.buffer.TaskBuffer` whose value counts define "seen" answers for the diversity
            rewards; without it the references are the population.
    """
    if len(tasks) != len(references):
        raise ValueError(f"compute_intrinsic got {len(tasks)} tasks and {len(references)} reference lists.")
    setting = (
        config if isinstance(config, Mapping | str) or config is None else getattr(config, "intrinsic_rewards", None)
    )
    enabled = parse_intrinsic_config(setting)
    out: list[dict[str, float]] = [{} for _ in tasks]
    if not enabled:
        return out
    counts_cache: dict[tuple[str, str], Counter] = {}

    def counts(task_type: str, field: str, refs: Sequence[Task]) -> Counter:
        if buffer is None:
            return _value_counts(refs, field)
        key = (task_type, field)
        if key not in counts_cache:
            counts_cache[key] = _population(task_type, field, refs, buffer)
        return counts_cache[key]

    for i, (task, refs) in enumerate(zip(tasks, references, strict=True)):
        if task is None:
            continue
        values: dict[str, float | None] = {}
        if task.task_type in ("deduction", "abduction"):
            if parse_program(task.program) is None:
                continue  # unparsable or hostile nesting: radon/complexipy are recursive, never feed them that
            if "complexity" in enabled:
                cc = cognitive_complexity(task.program)
                values["complexity"] = None if cc is None else cc / 15.0
            if "halstead" in enabled:
                values["halstead"] = halstead_score(task.program)
            if "mean_edit_distance" in enabled:
                values["mean_edit_distance"] = mean_edit_distance(task.program, [r.program for r in refs])
            if "answer_diversity" in enabled:
                if task.task_type == "deduction":
                    answer, field = (task.output or "").strip(), "output"
                else:
                    answer, field = input_shape(task.input or ""), "input"
                values["answer_diversity"] = surprise(answer, counts(task.task_type, field, refs))
        elif task.task_type == "induction":
            for name, field, items, norm in (
                ("input_diversity", "input", task.inputs, input_shape),
                ("output_diversity", "output", task.outputs, str.strip),
            ):
                if name in enabled and items:
                    population = counts("induction", field, refs)
                    total = sum(population.values())
                    values[name] = sum(surprise(norm(v), population, total) for v in items) / len(items)
        out[i] = {k: v for k, v in values.items() if v is not None}
    return out
