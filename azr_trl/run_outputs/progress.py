"""Live progress for AZR runs: one line per logged step with rewards per task type and role, and the buffer size."""

from __future__ import annotations

import math
import time
from typing import Any

from transformers import TrainerCallback


TASK_ABBREVIATIONS = {"deduction": "ded", "abduction": "abd", "induction": "ind"}  # other task types: their name
# Where a step's time went, as the line shows it: the generation calls, the executor's wait and the optimisation.
_TIME_PARTS = (
    ("propose", "generate_propose"),
    ("solve", "generate_solve"),
    ("mc", "generate_mc"),
    ("exec", "execute_wait"),
    ("optimize", "optimize"),
)


def task_types_in(keys) -> list[str]:
    """The task types with ``azr/<task type>/propose|solve/...`` metrics among ``keys``: the paper's first, in their
    order, then any other (a family, a plugin) by name."""
    found = {key.split("/")[1] for key in keys if key.count("/") >= 3 and key.split("/")[2] in ("propose", "solve")}
    return [t for t in TASK_ABBREVIATIONS if t in found] + sorted(found - set(TASK_ABBREVIATIONS))


def format_step_line(logs: dict[str, Any], step: int, max_steps: int, seconds_per_step: float | None = None) -> str:
    """Render the ``azr/...`` metrics of one log entry as a single line.

    Example: ``step 3/20 | 9.8s/step | ded P -0.12 S +0.25 | abd P -1.00 S -0.50 | valid 33% | buffer 14 (+5) | time
    propose 2s solve 2s mc 3s exec 0s optimize 2s``.
    Task types without metrics are left out, missing values show as ``--``.
    """
    parts = [f"step {step}/{max_steps}"]
    if seconds_per_step is not None:
        parts.append(f"{seconds_per_step:.1f}s/step")
    tasks = task_types_in(logs)
    for task in tasks:
        propose = _fmt(logs.get(f"azr/{task}/propose/reward_mean"), "{:+.2f}")
        solve = _fmt(logs.get(f"azr/{task}/solve/reward_mean"), "{:+.2f}")
        parts.append(f"{TASK_ABBREVIATIONS.get(task, task)} P {propose} S {solve}")
    valid = [logs[f"azr/{t}/propose/valid_rate"] for t in tasks if _number(logs.get(f"azr/{t}/propose/valid_rate"))]
    if valid:
        parts.append(f"valid {100 * sum(valid) / len(valid):.0f}%")
    sizes = [logs[k] for k in logs if k.startswith("azr/buffer/") and k.endswith("/size") and _number(logs[k])]
    if sizes:
        new = [logs[k] for k in logs if k.startswith("azr/buffer/") and k.endswith("/new") and _number(logs[k])]
        parts.append(f"buffer {int(sum(sizes))}" + (f" (+{int(sum(new))})" if new else ""))
    spent = {name: logs.get(f"azr/time/{key}") for name, key in _TIME_PARTS}
    if any(_number(v) for v in spent.values()):
        parts.append("time " + " ".join(f"{name} {_fmt(v, '{:.0f}s')}" for name, v in spent.items()))
    return " | ".join(parts)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value))


def _fmt(value: Any, spec: str) -> str:
    return spec.format(value) if _number(value) else "--"


class AZRProgressCallback(TrainerCallback):
    """A tqdm bar over the training steps plus one line per logged step (main process only).

    P is the mean proposer reward and S the mean solver reward of each task type; ``valid`` is the share of proposals
    that passed the executor and ``buffer`` the number of tasks in the buffer (new ones this step in brackets).
    """

    def __init__(self) -> None:
        self._bar = None
        self._last_time: float | None = None
        self._last_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        from tqdm.auto import tqdm

        self._bar = tqdm(total=state.max_steps, initial=state.global_step, desc="AZR", unit="step", dynamic_ncols=True)
        self._last_time, self._last_step = time.perf_counter(), state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        if self._bar is not None:
            self._bar.update(state.global_step - self._bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or not any(k.startswith("azr/") for k in logs):
            return
        now = time.perf_counter()
        per_step = None
        if self._last_time is not None and state.global_step > self._last_step:
            per_step = (now - self._last_time) / (state.global_step - self._last_step)
        self._last_time, self._last_step = now, state.global_step
        line = format_step_line(logs, state.global_step, state.max_steps, per_step)
        if self._bar is not None:
            self._bar.write(line)
        else:
            print(line, flush=True)

    def on_train_end(self, args, state, control, **kwargs):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
