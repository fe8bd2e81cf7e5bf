"""Run reports: PNG plots and one self-contained HTML page from an AZR run directory.

The inputs are what every run writes: ``trainer_state.json`` (its ``log_history`` holds the ``azr/...`` metrics of each
logged step; a run that stopped early still has one in its latest ``checkpoint-*``) and, with ``log_completions``,
``completions/completions_{step}.parquet``. Missing metrics leave their plot out rather than failing.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..seeding.generation import SEEDING_METRICS
from ..tasks.reading import blocks_with_tag, code_blocks, fenced_blocks
from ..tasks.task import ROLES
from .progress import task_types_in


TIME_PHASES = ("generate_propose", "generate_mc", "generate_solve", "execute", "logprob", "optimize")
REPORT_FILE = "report.html"


########################
# Reading a run directory
########################
def find_trainer_state(run_dir: str | Path) -> Path:
    """``run_dir/trainer_state.json``, else the one of the latest ``checkpoint-*``; FileNotFoundError if neither."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    top = run_dir / "trainer_state.json"
    if top.is_file():
        return top
    checkpoints = sorted(
        (p for p in run_dir.glob("checkpoint-*") if (p / "trainer_state.json").is_file()),
        key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1,
    )
    if not checkpoints:
        raise FileNotFoundError(
            f"{run_dir} has no trainer_state.json (nor a checkpoint-*/trainer_state.json): is it a training output_dir?"
        )
    return checkpoints[-1] / "trainer_state.json"


def load_log_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The logged training steps (entries with a ``step``), oldest first."""
    state = json.loads(find_trainer_state(run_dir).read_text())
    return [entry for entry in state.get("log_history", []) if "step" in entry]


def load_completions(run_dir: str | Path):
    """All ``completions/*.parquet`` tables of a run as one DataFrame with a ``step`` column, or None if there are none."""
    import pandas as pd

    files = sorted(Path(run_dir, "completions").glob("completions_*.parquet"))
    frames = []
    for file in files:
        frame = pd.read_parquet(file)
        if "step" not in frame.columns:
            match = re.search(r"(\d+)", file.stem)
            frame["step"] = int(match.group(1)) if match else 0
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else None


def completion_text(value: Any) -> str:
    """A completion as text: TRL stores conversational completions as a list of messages."""
    if isinstance(value, str):
        return value
    try:
        return "".join(str(m.get("content", "")) for m in value if isinstance(m, dict))
    except TypeError:
        return "" if value is None else str(value)


def proposal_parts(completion: str) -> tuple[str | None, str | None]:
    """(program, input) of a proposal completion: its last Python block and its last ```input block, if any."""
    blocks = fenced_blocks(completion)
    programs, inputs = code_blocks(blocks), blocks_with_tag(blocks, "input")
    return (programs[-1].body if programs else None), (inputs[-1].body if inputs else None)


def series(history: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric, skipping steps where it is missing or NaN."""
    steps, values = [], []
    for entry in history:
        value = entry.get(key)
        if isinstance(value, (int, float)) and not math.isnan(value):
            steps.append(entry["step"])
            values.append(float(value))
    return steps, values


def azr_entries(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The logged steps that carry AZR step metrics (not the seeding phase, nor e.g. the final train_runtime entry)."""
    return [
        entry
        for entry in history
        if any(key.startswith("azr/") and not key.startswith(f"{SEEDING_METRICS}/") for key in entry)
    ]


def seeding_entry(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The seeding phase's log entry (``azr/seeding/...`` metrics), if the run had one."""
    entries = [entry for entry in history if any(key.startswith(f"{SEEDING_METRICS}/") for key in entry)]
    return entries[-1] if entries else None


def present_task_types(history: list[dict[str, Any]]) -> list[str]:
    return task_types_in({key for entry in history for key in entry})


#######
# Plots
#######
def _new_figure(ncols: int = 1, width: float = 6.0, step_axes: tuple[int, ...] | None = None):
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(width * ncols, 3.6), dpi=100, layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    for i, ax in enumerate(axes):
        if step_axes is None or i in step_axes:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # x is the step
    return fig, axes


def _single_step_ticks(ax) -> None:
    # With one logged step the integer locator has nothing to work with and falls back to fractional ticks.
    steps = {float(x) for line in ax.lines for x in line.get_xdata()}
    if len(steps) == 1:
        ax.set_xticks(sorted(steps))


def _per_role_plot(history, tasks, metric: str, ylabel: str, title: str):
    fig, axes = _new_figure(ncols=2)
    drawn = False
    for ax, role in zip(axes, ROLES, strict=True):
        for task in tasks:
            steps, values = series(history, f"azr/{task}/{role}/{metric}")
            if steps:
                ax.plot(steps, values, marker="o", markersize=3, label=task)
                drawn = True
        ax.set_title(f"{role}")
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
            _single_step_ticks(ax)
    fig.suptitle(title)
    return fig if drawn else None


def plot_rewards(history, tasks):
    return _per_role_plot(history, tasks, "reward_mean", "mean reward", "Rewards per task type and role")


def plot_accuracy(history, tasks):
    return _per_role_plot(
        history, tasks, "accuracy", "accuracy", "Accuracy (solve: solver accuracy; propose: MC solve rate)"
    )


def plot_lengths(history, tasks):
    return _per_role_plot(history, tasks, "completion_length", "tokens", "Completion length")


def plot_proposals(history, tasks):
    """Valid-proposal rate over steps, and the verdicts of all proposals over the run."""
    fig, (ax_rate, ax_verdict) = _new_figure(ncols=2, step_axes=(0,))
    drawn = False
    for task in tasks:
        steps, values = series(history, f"azr/{task}/propose/valid_rate")
        if steps:
            ax_rate.plot(steps, values, marker="o", markersize=3, label=task)
            drawn = True
    ax_rate.set_ylim(-0.05, 1.05)
    ax_rate.set_title("valid proposals")
    ax_rate.set_xlabel("step")
    ax_rate.set_ylabel("fraction valid")
    ax_rate.grid(alpha=0.3)
    if ax_rate.lines:
        ax_rate.legend(fontsize=8)
        _single_step_ticks(ax_rate)

    verdicts = verdict_fractions(history, tasks)
    names = sorted({v for per_task in verdicts.values() for v in per_task}, key=lambda v: (v != "ok", v))
    bottom = [0.0] * len(tasks)
    for name in names:
        heights = [verdicts.get(task, {}).get(name, 0.0) for task in tasks]
        if not any(heights):
            continue
        ax_verdict.bar(tasks, heights, bottom=bottom, label=name, color=_verdict_color(name, names))
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        drawn = True
    ax_verdict.set_title("proposal verdicts (mean over steps)")
    ax_verdict.set_ylabel("fraction of proposals")
    if ax_verdict.patches:
        ax_verdict.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig if drawn else None


# Valid in green, format errors in grey; the other verdicts take the rest of matplotlib's tab20 palette, in order.
_VERDICT_COLORS = {"ok": "#2ca02c", "format_error": "#9e9e9e"}
_OTHER_VERDICT_COLORS = (
    "#1f77b4", "#ff7f0e", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5",
)  # fmt: skip


def _verdict_color(name: str, names: list[str]) -> str:
    if name in _VERDICT_COLORS:
        return _VERDICT_COLORS[name]
    others = [n for n in names if n not in _VERDICT_COLORS]
    return _OTHER_VERDICT_COLORS[others.index(name) % len(_OTHER_VERDICT_COLORS)]


def verdict_fractions(history, tasks) -> dict[str, dict[str, float]]:
    """Mean fraction of each proposal verdict per task type over the steps that logged proposal verdicts (a verdict a
    step did not log counts 0 there, so each task type's fractions sum to 1)."""
    out: dict[str, dict[str, float]] = {}
    for task in tasks:
        prefix = f"azr/{task}/propose/verdict/"
        steps = [
            {k[len(prefix) :]: v for k, v in entry.items() if k.startswith(prefix) and isinstance(v, (int, float))}
            for entry in history
        ]
        steps = [verdicts for verdicts in steps if verdicts]
        names = sorted({name for verdicts in steps for name in verdicts})
        if steps:
            out[task] = {name: sum(verdicts.get(name, 0.0) for verdicts in steps) / len(steps) for name in names}
    return out


def plot_buffer(history, tasks):
    fig, (ax,) = _new_figure()
    for task in tasks:
        steps, values = series(history, f"azr/buffer/{task}/size")
        if steps:
            ax.plot(steps, values, marker="o", markersize=3, label=task)
    ax.set_title("Task buffer size")
    ax.set_xlabel("step")
    ax.set_ylabel("tasks")
    ax.grid(alpha=0.3)
    if not ax.lines:
        return None
    ax.legend(fontsize=8)
    _single_step_ticks(ax)
    return fig


def plot_time_split(history):
    fig, (ax,) = _new_figure(width=8.0)
    steps = [entry["step"] for entry in history]
    bottom = [0.0] * len(steps)
    logged = {k.removeprefix("azr/time/") for entry in history for k in entry if k.startswith("azr/time/")}
    for phase in [p for p in TIME_PHASES if p in logged] + sorted(logged - set(TIME_PHASES)):
        values = [_float(entry.get(f"azr/time/{phase}")) for entry in history]
        if not any(values):
            continue
        ax.bar(steps, values, bottom=bottom, label=phase)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    if not ax.patches:
        return None
    ax.set_title("Step time split")
    ax.set_xlabel("step")
    ax.set_ylabel("seconds")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def _float(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not math.isnan(value) else 0.0


########
# Report
########
def write_report(run_dir: str | Path, output_dir: str | Path | None = None) -> Path:
    """Write the PNG plots and ``report.html`` (images inlined) for ``run_dir``; return the HTML path.

    ``output_dir`` defaults to ``run_dir/report``. Raises FileNotFoundError when ``run_dir`` has no trainer state.
    """
    run_dir = Path(run_dir)
    history = load_log_history(run_dir)
    output_dir = Path(output_dir) if output_dir is not None else run_dir / "report"
    output_dir.mkdir(parents=True, exist_ok=True)
    tasks = present_task_types(history)

    figures = {
        "rewards": ("Rewards per task type and role", plot_rewards(history, tasks)),
        "accuracy": ("Accuracy per task type and role", plot_accuracy(history, tasks)),
        "proposals": ("Valid proposals and verdicts", plot_proposals(history, tasks)),
        "buffer": ("Buffer growth", plot_buffer(history, tasks)),
        "lengths": ("Completion lengths", plot_lengths(history, tasks)),
        "time": ("Step-time split", plot_time_split(history)),
    }
    sections = []
    for name, (title, fig) in figures.items():
        if fig is None:
            sections.append(f"<h2>{html.escape(title)}</h2><p class='missing'>No data logged for this plot.</p>")
            continue
        png = output_dir / f"{name}.png"
        fig.savefig(png)
        encoded = base64.b64encode(png.read_bytes()).decode("ascii")
        sections.append(
            f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{encoded}'>"
        )

    completions = load_completions(run_dir)
    page = _html_page(run_dir, history, tasks, sections, _proposal_rows(completions))
    out = output_dir / REPORT_FILE
    out.write_text(page, encoding="utf-8")
    return out


def _summary_table(history, tasks) -> str:
    history = azr_entries(history)
    if not history:
        return "<p class='missing'>No logged steps.</p>"
    first, last = history[0], history[-1]
    rows = []
    for task in tasks:
        for role in ROLES:
            cells = []
            for metric in ("reward_mean", "accuracy"):
                for entry in (first, last):
                    value = entry.get(f"azr/{task}/{role}/{metric}")
                    cells.append(f"{value:.3f}" if isinstance(value, (int, float)) and not math.isnan(value) else "–")
            rows.append(f"<tr><td>{task}</td><td>{role}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    header = (
        f"<tr><th>task</th><th>role</th><th>reward step {first['step']}</th><th>reward step {last['step']}</th>"
        f"<th>accuracy step {first['step']}</th><th>accuracy step {last['step']}</th></tr>"
    )
    return f"<table>{header}{''.join(rows)}</table>"


_SEEDING_PHASES = (("tasks", "seed triplets"), ("induction", "induction seeds"))


def _seeding_section(history) -> str:
    """The seeding phase (Algorithm 1) as a table: what each seed file holds, how many rounds and which verdicts."""
    entry = seeding_entry(history)
    if entry is None:
        return (
            "<p class='missing'>No seeding phase in this run: the buffer started from seed files or the zero "
            "triplet (or from a checkpoint).</p>"
        )
    rows = []
    for key, title in _SEEDING_PHASES:
        prefix = f"{SEEDING_METRICS}/{key}/"
        if f"{prefix}count" not in entry:
            continue
        value = {name: entry.get(prefix + name, 0) for name in ("count", "added", "rounds", "proposals")}
        value.update(valid_rate=entry.get(prefix + "valid_rate", 0.0), seconds=entry.get(prefix + "seconds", 0.0))
        verdicts = sorted(
            ((k[len(prefix + "verdict/") :], v) for k, v in entry.items() if k.startswith(prefix + "verdict/")),
            key=lambda kv: -kv[1],
        )
        histogram = ", ".join(f"{html.escape(name)} {int(n)}" for name, n in verdicts) or "–"
        rows.append(
            f"<tr><td>{title}</td><td>{int(value['count'])}</td><td>{int(value['added'])}</td>"
            f"<td>{int(value['rounds'])}</td><td>{int(value['proposals'])}</td><td>{value['valid_rate']:.1%}</td>"
            f"<td>{value['seconds']:.0f}</td><td>{histogram}</td></tr>"
        )
    header = (
        "<tr><th>seed file</th><th>tasks</th><th>new this run</th><th>rounds</th><th>proposals</th><th>valid</th>"
        "<th>seconds</th><th>proposal verdicts</th></tr>"
    )
    return f"<table>{header}{''.join(rows)}</table>"


def _proposal_rows(completions, limit: int = 12) -> list[dict[str, str]]:
    """Proposals from the latest logged steps, valid ones first, for the page's examples table."""
    if completions is None or "role" not in completions.columns:
        return []
    proposals = completions[completions["role"] == "propose"]
    if proposals.empty:
        return []
    proposals = proposals.sort_values("step", ascending=False, kind="stable")
    by_verdict: dict[str, list] = defaultdict(list)
    for _, row in proposals.iterrows():
        by_verdict[str(row.get("verdict", "?"))].append(row)
    ordered = by_verdict.pop("ok", []) + [row for rows in by_verdict.values() for row in rows]
    out = []
    for row in ordered[:limit]:
        text = completion_text(row.get("completion"))
        program, inputs = proposal_parts(text)
        shown = program if program is not None else f"(no program block)\n{text[-600:]}"
        if inputs is not None:
            shown += f"\n\n# input: {inputs}"
        out.append(
            {
                "step": str(row.get("step", "")),
                "task_type": str(row.get("task_type", "")),
                "verdict": str(row.get("verdict", "")),
                "program": shown,
            }
        )
    return out


_CSS = """
body { font-family: -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { border: 1px solid #ccc; padding: 4px 8px; }
th { background: #f3f3f3; } img { max-width: 100%; } .missing { color: #888; font-style: italic; }
pre { margin: 0; white-space: pre-wrap; font-size: 0.85em; max-height: 16em; overflow: auto; }
"""


def _html_page(run_dir, history, tasks, sections, proposals) -> str:
    logged = azr_entries(history)
    steps = f"{logged[0]['step']}–{logged[-1]['step']} ({len(logged)} logged)" if logged else "none"
    examples = "<p class='missing'>No completions logged (set log_completions: true).</p>"
    if proposals:
        rows = "".join(
            f"<tr><td>{p['step']}</td><td>{html.escape(p['task_type'])}</td><td>{html.escape(p['verdict'])}</td>"
            f"<td><pre>{html.escape(p['program'])}</pre></td></tr>"
            for p in proposals
        )
        examples = f"<table><tr><th>step</th><th>task</th><th>verdict</th><th>program</th></tr>{rows}</table>"
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>AZR run report: {html.escape(run_dir.name)}</title><style>{_CSS}</style></head><body>"
        f"<h1>AZR run report: {html.escape(run_dir.name)}</h1>"
        f"<p>Run directory: <code>{html.escape(str(run_dir.resolve()))}</code> · logged steps: {steps} · "
        f"task types: {html.escape(', '.join(tasks) or 'none')}</p>"
        f"<h2>Seeding phase</h2>{_seeding_section(history)}"
        f"<h2>First and last logged step</h2>{_summary_table(history, tasks)}"
        + "".join(sections)
        + f"<h2>Proposed tasks</h2>{examples}</body></html>\n"
    )
