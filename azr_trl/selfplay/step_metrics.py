"""Per-step AZR metrics: what each row produced, the metrics computed from the rows of all ranks (so every rank
computes the same numbers), the wall time of the step's phases, and how one step is logged into GRPO's metrics and
completions table.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from accelerate.utils import gather_object

from ..tasks.task import ROLES
from .batch import clipped_completions


if TYPE_CHECKING:
    from trl import GRPOTrainer

    from .rollouts import Rollouts


@dataclass
class StepRecord:
    """What one trained row (a propose or a solve completion) produced."""

    task_type: str
    role: str
    format_ok: bool
    verdict: str  # propose: the executor verdict (or format/parse error); solve: correct / wrong / format_error
    valid: bool | None = None  # propose rows
    solve_rate: float | None = None  # propose rows with a valid task
    correct: bool | None = None  # solve rows
    length: int = 0  # completion tokens

    def reward_kwargs(self) -> dict:
        """The columns the reward functions receive for this row."""
        return {
            "role": self.role,
            "task_type": self.task_type,
            "format_ok": self.format_ok,
            "valid": self.valid,
            "solve_rate": self.solve_rate,
            "correct": self.correct,
            "verdict": self.verdict,
        }


def propose_records(
    proposed: Rollouts, proposals: list, verdicts: list[str], valid_tasks: list, solve_rates: list
) -> list[StepRecord]:
    """One record per proposer row: its parse, the executor's verdict, the valid task (or None) and its solve rate."""
    rows = zip(
        proposed.task_types, proposals, verdicts, valid_tasks, solve_rates, proposed.completion_ids, strict=True
    )
    return [
        StepRecord(t, "propose", p.format_ok, verdict, task is not None, rate, None, len(c))
        for t, p, verdict, task, rate, c in rows
    ]


def solve_records(solved: Rollouts, answers: list, correct: list[bool]) -> list[StepRecord]:
    """One record per solver row: verdict ``format_error``, ``correct`` or ``wrong``."""
    rows = zip(solved.task_types, answers, correct, solved.completion_ids, strict=True)
    return [
        StepRecord(t, "solve", a.format_ok, _answer_verdict(a, ok), None, None, ok, len(c)) for t, a, ok, c in rows
    ]


def _answer_verdict(answer, correct: bool) -> str:
    if not answer.format_ok:
        return "format_error"
    return "correct" if correct else "wrong"


class PhaseTimer:
    """Wall-clock seconds per named phase: ``with timer("generate_solve"): ...`` adds the block's time to
    ``timer.seconds["generate_solve"]``.

    A phase timed again adds to its total; a phase nested in another counts for both. A block that raises is timed
    too, and its exception propagates.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start


def _mean(values) -> float:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(values) / len(values) if values else math.nan


def _std(values) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if len(values) < 2:
        return 0.0 if values else math.nan
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def learnability(solve_rate: float | None) -> float | None:
    """The paper's learnability of a valid task: ``1 - r`` for a solve rate strictly between 0 and 1, else 0."""
    if solve_rate is None:
        return None
    return 1.0 - solve_rate if 0.0 < solve_rate < 1.0 else 0.0


def step_metrics(records: list[StepRecord], rewards: list[float], task_types: list[str]) -> dict[str, float]:
    """Metrics per task type x role, keyed ``azr/{task}/{role}/...`` (NaN where a value does not exist)."""
    out: dict[str, float] = {}
    for task_type in task_types:
        for role in ROLES:
            idx = [i for i, r in enumerate(records) if r.task_type == task_type and r.role == role]
            if not idx:
                continue
            rows = [records[i] for i in idx]
            prefix = f"azr/{task_type}/{role}"
            out[f"{prefix}/reward_mean"] = _mean([rewards[i] for i in idx])
            out[f"{prefix}/reward_std"] = _std([rewards[i] for i in idx])
            out[f"{prefix}/format_error_rate"] = _mean([0.0 if r.format_ok else 1.0 for r in rows])
            out[f"{prefix}/completion_length"] = _mean([float(r.length) for r in rows])
            if role == "solve":
                out[f"{prefix}/accuracy"] = _mean([1.0 if r.correct else 0.0 for r in rows])
                continue
            valid = [r for r in rows if r.valid]
            out[f"{prefix}/accuracy"] = _mean([r.solve_rate for r in valid])
            out[f"{prefix}/valid_rate"] = len(valid) / len(rows)
            out[f"{prefix}/learnability"] = _mean([learnability(r.solve_rate) for r in valid])
            counts = Counter(r.verdict for r in rows)
            for verdict in sorted(set(counts) | {"ok"}):
                out[f"{prefix}/verdict/{verdict}"] = counts[verdict] / len(rows)
    return out


def log_step(
    trainer: GRPOTrainer,
    records: list[StepRecord],
    rewards: torch.Tensor,
    rewards_per_func: torch.Tensor,
    advantages: torch.Tensor,
    rollouts: Rollouts,
    timings: dict[str, float],
    programs: int,
    *,
    task_types: list[str],
    buffer_stats: dict[str, float],
    prompt_format: str,
) -> None:
    """Log one step into GRPO's metrics and completions table (``trainer``'s logging state): ``records``, rewards and
    advantages are those of all ranks, ``rollouts`` this rank's rows, ``timings`` this rank's seconds per phase
    (``execute``: its executor batches), ``programs`` the programs it ran, ``buffer_stats`` the task buffer's
    ``azr/buffer/*`` values."""
    metrics = trainer._metrics["train"]
    values = step_metrics(records, rewards.tolist(), task_types)
    per_rank = gather_object([(programs, timings["execute"])])
    all_programs = sum(count for count, _ in per_rank)
    seconds = max(spent for _, spent in per_rank)  # the slowest rank's executor time
    values["azr/executor/programs"] = all_programs
    values["azr/executor/programs_per_s"] = all_programs / seconds if seconds > 0 else 0.0
    for name, seconds_spent in timings.items():
        values[f"azr/time/{name}"] = seconds_spent
    values.update(buffer_stats)
    for key, value in values.items():
        metrics[key].append(float(value))
    for i, name in enumerate(trainer.reward_func_names):
        metrics[f"rewards/{name}/mean"].append(torch.nanmean(rewards_per_func[:, i]).item())
    metrics["reward"].append(torch.nanmean(rewards).item())
    for key, value in completion_length_metrics(trainer, rollouts).items():
        metrics[key].append(value)
    metrics["num_tokens"] = [float(trainer.state.num_input_tokens_seen)]  # a running total, as GRPO keeps it

    trainer._logs["prompt"].extend(gather_object(rollouts.prompts))
    trainer._logs["completion"].extend(gather_object(rollouts.completions(prompt_format)))
    for i, name in enumerate(trainer.reward_func_names):
        trainer._logs["rewards"][name].extend(rewards_per_func[:, i].tolist())
    trainer._logs["advantages"].extend(advantages.tolist())
    for column in ("task_type", "role", "verdict"):
        trainer._logs["extra"][column].extend(getattr(r, column) for r in records)
    _flush_reward_func_logs(trainer, len(rollouts.prompts))


def completion_length_metrics(trainer: GRPOTrainer, rollouts: Rollouts) -> dict[str, float]:
    """What GRPO's `_generate` logs for its rows, for this step's trained rows of all ranks: completion lengths
    (``completions/{mean,min,max}_length``), the share cut by ``max_completion_length`` (``completions/clipped_ratio``),
    the lengths of those that ended (``completions/{mean,min,max}_terminated_length``, 0 when none did). Their
    prompt and completion tokens are added to ``state.num_input_tokens_seen``, as GRPO does."""
    device = trainer.accelerator.device
    gather = trainer.accelerator.gather
    prompt_lengths = gather(torch.tensor([len(ids) for ids in rollouts.prompt_ids], device=device))
    lengths = gather(torch.tensor([len(ids) for ids in rollouts.completion_ids], device=device)).float()
    cut = gather(torch.tensor(clipped_completions(trainer, rollouts.completion_ids), device=device))
    trainer.state.num_input_tokens_seen += int(prompt_lengths.sum().item() + lengths.sum().item())
    terminated = lengths[~cut] if (~cut).any() else torch.zeros(1, device=device)
    return {
        "completions/mean_length": lengths.mean().item(),
        "completions/min_length": lengths.min().item(),
        "completions/max_length": lengths.max().item(),
        "completions/clipped_ratio": cut.float().mean().item(),
        "completions/mean_terminated_length": terminated.mean().item(),
        "completions/min_terminated_length": terminated.min().item(),
        "completions/max_terminated_length": terminated.max().item(),
    }


def _flush_reward_func_logs(trainer: GRPOTrainer, local_rows: int) -> None:
    """Log what the reward functions gave GRPO's ``log_extra``/``log_metric`` this step (GRPO flushes them in the
    step method AZR replaces): extra completion-table columns gathered over ranks (a rank without the column adds
    ``None`` for its rows), each metric averaged over every value of every rank. Names go in sorted order, so every
    rank gathers the same name at the same time."""
    for column in sorted(set(gather_object(list(trainer._pending_extra_logs)))):
        local = trainer._pending_extra_logs.get(column, [None] * local_rows)
        trainer._logs["extra"][column].extend(gather_object(list(local)))
    trainer._pending_extra_logs.clear()
    for name in sorted(set(gather_object(list(trainer._pending_metrics)))):
        local = trainer._pending_metrics.get(name, [])
        per_rank = gather_object([(sum(local), len(local))])
        trainer._metrics["train"][name].append(sum(t for t, _ in per_rank) / sum(n for _, n in per_rank))
    trainer._pending_metrics.clear()
