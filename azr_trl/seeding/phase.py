"""The seeding phase of training (Algorithm 1): the starting model proposes the seed tasks before the first step.

It runs ``azr-trl seed``'s round loop and stop rule (:func:`azr_trl.seeding.generation.generate_seed_tasks`) through the
trainer's own generation backend (HF generate, vLLM server or colocate) and executor, which the trainer hands over as
a :class:`SeedingEngine`, on every rank: each rank proposes its share of every round, the valid tasks of all ranks are
gathered in rank order, and every rank ends with the same seeds. The main process appends each accepted task to the
run directory at once, so a restart in the same ``output_dir`` continues from those files instead of seeding again; a
resumed checkpoint brings its own buffer and skips the phase. A run that stops during the phase (a vLLM server gone
past its retry window, a weight push that never returns) writes no checkpoint: checkpoints exist only once the seeds
are in the buffer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from accelerate.utils import broadcast_object_list, gather_object

from .generation import (
    SEED_INDUCTION_FILE,
    SEED_TASKS_FILE,
    SEEDING_METRICS,
    GenerateFn,
    RankGroup,
    SeedingError,
    SeedReport,
    generate_seed_tasks,
)


if TYPE_CHECKING:
    from ..azr_config import AZRConfig
    from ..tasks import Task, TaskSpec
    from ..tasks.prompt_budget import PromptBudget


@dataclass(frozen=True)
class SeedingEngine:
    """What the seeding phase uses of the trainer: its generation engine, executor, prompt budget and format, its
    processes, and its log."""

    generate: GenerateFn  # prompts -> completions, through the trainer's engine (a collective on several ranks)
    executor: Any
    prompt_budget: PromptBudget  # checked with the trainer's prompts at start
    fmt: str
    require_think: bool
    ranks: RankGroup
    log_metrics: Callable[[dict[str, float]], None]  # one log entry at step 0


def accelerator_ranks(accelerator) -> RankGroup:
    """The processes of an accelerate ``Accelerator`` as a :class:`RankGroup`."""
    return RankGroup(
        rank=accelerator.process_index,
        world_size=accelerator.num_processes,
        gather=lambda obj: gather_object([obj]),
        broadcast=lambda obj: broadcast_object_list([obj])[0],
    )


def run_seeding_phase(args: AZRConfig, specs: dict[str, TaskSpec], engine: SeedingEngine) -> list[Task]:
    """Collect the seed tasks with the trainer's ``engine``: the pinned step-0 seeds for its buffer.

    ``specs`` holds a spec for every task type (the trainer's parsing options). Raises :class:`SeedingError`, after
    logging the phase, when fewer than ``seed_min_tasks`` triplets (or induction items) were collected.
    """
    with_induction = "induction" in args.task_types and args.seed_num_induction > 0
    report = generate_seed_tasks(
        engine.generate,
        engine.executor,
        os.path.join(args.output_dir, SEED_TASKS_FILE),
        args.seed_num_tasks,
        induction_output=os.path.join(args.output_dir, SEED_INDUCTION_FILE) if with_induction else None,
        num_induction=args.seed_num_induction,
        batch_size=args.propose_per_type,
        num_references=args.num_references,
        num_inputs=args.induction_num_inputs,
        max_rounds=args.seed_max_rounds,
        patience=args.seed_patience,
        fmt=engine.fmt,
        require_think=engine.require_think,
        seed=args.seed,
        progress=not args.disable_tqdm,
        specs=specs,
        ranks=engine.ranks,
        min_tasks=args.seed_min_tasks,
        prompt_budget=engine.prompt_budget,
    )
    _log(engine, report)
    minimums = [(report.triplets, args.seed_min_tasks)]
    if report.induction is not None:
        minimums.append((report.induction, min(args.seed_min_tasks, args.seed_num_induction)))
    for phase, minimum in minimums:
        problem = phase.shortfall(minimum)
        if problem is not None:
            raise SeedingError(problem)
    # Like the reference: at most the target of each file, and every seed triplet in both triplet buffers.
    seeds = [
        replace(t, task_type=tt)
        for t in report.triplets.tasks[: args.seed_num_tasks]
        for tt in ("deduction", "abduction")
    ]
    if report.induction is not None:
        seeds += report.induction.tasks[: args.seed_num_induction]
    return seeds


def seeding_resume_hint(args) -> str:
    """What a run stopped during the seeding phase leaves, and how it continues."""
    files = [os.path.join(args.output_dir, SEED_TASKS_FILE)]
    if "induction" in args.task_types and args.seed_num_induction > 0:
        files.append(os.path.join(args.output_dir, SEED_INDUCTION_FILE))
    return (
        f"The seeding phase had not finished, so no checkpoint was written: the seeds collected so far are in "
        f"{' and '.join(files)}, and a restart with the same output_dir (no --resume_from_checkpoint) seeds on from "
        "them before training."
    )


def seeding_metrics(report: SeedReport) -> dict[str, float]:
    """``azr/seeding/{tasks,induction}/{count,added,rounds,proposals,valid_rate,seconds,verdict/<name>}``."""
    logs: dict[str, float] = {}
    for name, phase in (("tasks", report.triplets), ("induction", report.induction)):
        if phase is None:
            continue
        prefix = f"{SEEDING_METRICS}/{name}"
        logs.update(
            {
                f"{prefix}/count": phase.count,
                f"{prefix}/added": phase.added,
                f"{prefix}/rounds": phase.rounds,
                f"{prefix}/proposals": phase.proposals,
                f"{prefix}/valid_rate": phase.valid_rate,
                f"{prefix}/seconds": round(phase.seconds, 3),
            }
        )
        logs.update({f"{prefix}/verdict/{v}": n for v, n in sorted(phase.verdicts.items())})
    return logs


def _log(engine: SeedingEngine, report: SeedReport) -> None:
    from transformers.utils import logging

    if engine.ranks.is_main:
        for phase in report.phases:
            logging.get_logger(__name__).warning(
                f"Seeding: {phase.path} holds {phase.count} {phase.name} (+{phase.added}) after {phase.rounds} rounds; "
                f"{phase.proposals} proposals, {phase.valid_rate:.0%} valid ({phase.histogram()}); stopped: "
                f"{phase.stop}."
            )
    engine.log_metrics(seeding_metrics(report))
