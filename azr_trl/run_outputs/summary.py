"""The end-of-run summary that `azr_trl.launch` prints on the main process."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, TextIO

from ..tasks.task import ROLES
from .report import azr_entries, completion_text, load_completions, present_task_types, proposal_parts


def pick_proposals(completions, count: int = 3) -> list[dict[str, Any]]:
    """Up to ``count`` proposals from the latest logged steps: a valid one first, then other verdicts and task types."""
    if completions is None or "role" not in completions.columns:
        return []
    proposals = completions[completions["role"] == "propose"].sort_values("step", ascending=False, kind="stable")
    # Stable sort: valid proposals first, each group from the latest step down.
    ordered = sorted((row for _, row in proposals.iterrows()), key=lambda r: str(r.get("verdict")) != "ok")
    chosen: list = []

    def take(is_novel) -> None:
        for row in ordered:
            if len(chosen) < count and not any(row is c for c in chosen) and is_novel(row):
                chosen.append(row)

    take(lambda r: str(r.get("verdict")) not in {str(c.get("verdict")) for c in chosen})
    take(lambda r: str(r.get("task_type")) not in {str(c.get("task_type")) for c in chosen})
    take(lambda r: True)
    return [
        {
            "step": int(row.get("step", 0)),
            "task_type": str(row.get("task_type", "?")),
            "verdict": str(row.get("verdict", "?")),
            "completion": completion_text(row.get("completion")),
        }
        for row in chosen
    ]


def _value(entry: dict[str, Any], key: str) -> float | None:
    value = entry.get(key)
    return float(value) if isinstance(value, (int, float)) and not math.isnan(value) else None


def _fmt(value: float | None) -> str:
    return "  --" if value is None else f"{value:.2f}"


def _indent(text: str, max_lines: int = 8, width: int = 100) -> list[str]:
    lines = text.splitlines() or [""]
    shown = [f"      {line[:width]}" for line in lines[:max_lines]]
    if len(lines) > max_lines:
        shown.append(f"      ... ({len(lines) - max_lines} more lines)")
    return shown


def format_summary(
    output_dir: str | Path, log_history: list[dict[str, Any]], report_file: str | Path | None = None
) -> str:
    """The summary as text: accuracy at the first and last step, buffer growth, three proposals, where things are."""
    output_dir = Path(output_dir)
    steps = [entry for entry in azr_entries(log_history) if "step" in entry]
    out = ["", "=" * 30 + " AZR run summary " + "=" * 30]
    if not steps:
        out.append("No AZR metrics were logged (logging_steps larger than max_steps?).")
    else:
        first, last = steps[0], steps[-1]
        runtime = next((e["train_runtime"] for e in reversed(log_history) if "train_runtime" in e), None)
        timing = f", {runtime / 60:.1f} min" if runtime else ""
        out.append(f"Steps: {last['step']} ({len(steps)} logged{timing})")
        out.append("Accuracy (solve: solver accuracy; propose: Monte-Carlo solve rate of valid proposals)")
        out.append(f"  {'task':<10} {'role':<8} {'step ' + str(first['step']):>8} {'step ' + str(last['step']):>8}")
        for task in present_task_types(steps):
            for role in ROLES:
                key = f"azr/{task}/{role}/accuracy"
                out.append(f"  {task:<10} {role:<8} {_fmt(_value(first, key)):>8} {_fmt(_value(last, key)):>8}")
        growth = []
        for task in present_task_types(steps):
            size_first = _value(first, f"azr/buffer/{task}/size")
            size_last = _value(last, f"azr/buffer/{task}/size")
            if size_first is None or size_last is None:
                continue
            start = size_first - (_value(first, f"azr/buffer/{task}/new") or 0.0)  # size before the first step
            growth.append(f"{task} {start:.0f} -> {size_last:.0f}")
        if growth:
            out.append("Buffer: " + ", ".join(growth))

    proposals = pick_proposals(load_completions(output_dir))
    if proposals:
        out.append("Proposed tasks (latest steps, valid first):")
        for p in proposals:
            out.append(f"  [{p['task_type']} / {p['verdict']}] step {p['step']}")
            program, inputs = proposal_parts(p["completion"])
            if program is None:
                out.extend(_indent("(no program block) " + p["completion"].strip()[-200:], max_lines=3))
            else:
                out.extend(_indent(program))
                if inputs is not None:
                    out.extend(_indent(f"input: {inputs}", max_lines=2))

    checkpoints = sorted(
        (p for p in output_dir.glob("checkpoint-*") if p.name.rsplit("-", 1)[-1].isdigit()),
        key=lambda p: int(p.name.rsplit("-", 1)[-1]),
    )
    if checkpoints:
        out.append(f"Checkpoint: {checkpoints[-1]}")
    out.append(f"Model:      {output_dir}")
    if report_file is not None:
        out.append(f"Report:     {report_file}")
    else:
        out.append(f"Report:     azr-trl report {output_dir}   (writes {output_dir / 'report' / 'report.html'})")
    out.append("=" * 77)
    return "\n".join(out)


def print_summary(
    output_dir: str | Path,
    log_history: list[dict[str, Any]],
    report_file: str | Path | None = None,
    stream: TextIO | None = None,
) -> None:
    """Print `format_summary` (to stdout by default)."""
    print(format_summary(output_dir, log_history, report_file), file=stream or sys.stdout, flush=True)
