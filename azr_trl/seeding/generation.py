"""Seed generation: a model proposes seed tasks, the executor validates them, the valid, distinct ones are kept.

``azr-trl seed`` (through a generator of :mod:`azr_trl.generation.generators`) and the trainer's seeding phase (through the
trainer's own engine, :mod:`azr_trl.seeding.phase`) share this round loop and its stop rule: rounds of proposals,
each accepted task appended to its JSONL file at once (so an interrupted run resumes from the file), at most
``max_rounds`` rounds per file and a stop after ``patience`` rounds in a row without a new task.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..azr_config_defaults import DEFAULT_SEED_MAX_ROUNDS, DEFAULT_SEED_PATIENCE
from ..tasks import TASK_TYPES, Task, TaskSpec, get_task_spec, run_validation
from ..tasks.task import zero_triplet
from .seed_files import load_seed_file


if TYPE_CHECKING:
    from ..tasks.prompt_budget import PromptBudget


logger = logging.getLogger(__name__)

# Metric prefix of the trainer's seeding phase (one log entry, at step 0).
SEEDING_METRICS = "azr/seeding"
# Where the seeding phase writes its seeds in the run directory, and where `azr-trl seed` writes by default.
SEED_TASKS_FILE = "azr_seed_tasks.jsonl"
SEED_INDUCTION_FILE = "azr_seed_induction.jsonl"
# Seeding proposes triplets as both, alternating, whatever task types are trained (induction only with its own file).
SEED_TRIPLET_TYPES = ("deduction", "abduction")

# prompts -> completions, one per prompt; prompts are chat message lists or r1 strings. On several ranks every rank
# calls it once per round with the same number of prompts (generation backends gather across ranks).
GenerateFn = Callable[[list[Any]], list[str]]


def _gather_one(obj: Any) -> list[Any]:
    return [obj]


def _same(obj: Any) -> Any:
    return obj


def seed_specs(num_inputs: int = 10, specs: dict[str, TaskSpec] | None = None) -> dict[str, TaskSpec]:
    """A spec for every task type: those of ``specs``, the default ones (``num_inputs`` induction inputs) otherwise."""
    specs = dict(specs or {})
    for task_type in TASK_TYPES:
        specs.setdefault(task_type, get_task_spec(task_type, num_inputs=num_inputs))
    return specs


def check_seed_prompt_budget(budget: PromptBudget, specs: dict[str, TaskSpec], fmt: str, induction: bool) -> None:
    """Refuse a budget that even the shortest propose prompts (one zero-triplet reference) exceed.

    ``azr-trl seed`` checks with this before seeding; the trainer checks its budget once at start, for its seeding
    phase too (:meth:`~azr_trl.generation.trainer_mixin.EngineGenerationMixin._check_prompt_budget`).
    """
    proposing = [specs[t] for t in (*SEED_TRIPLET_TYPES, *(("induction",) if induction else ()))]
    for task_type, _, length in budget.shortest_prompts_over(proposing, fmt, roles=("propose",)):
        raise ValueError(
            f"The shortest {task_type} propose prompt has {length} tokens, more than the {budget.tokens} "
            "the generation engine leaves for a prompt next to the completion budget: lower the generation "
            "budget (--max-new-tokens) or use a model that takes longer sequences."
        )


class SeedingError(RuntimeError):
    """The seeding phase collected fewer seed tasks than training needs; the message says what happened."""


@dataclass(frozen=True)
class RankGroup:
    """The processes that seed together (one by default).

    Every rank proposes its own share of each round; ``gather`` returns one object per rank in rank order (a
    collective: every rank calls it), ``broadcast`` returns the main process's object on every rank. Ranks apply the
    gathered tasks in the same order, so they all end with the same seed set; only the main process writes files.
    """

    rank: int = 0
    world_size: int = 1
    gather: Callable[[Any], list[Any]] = _gather_one
    broadcast: Callable[[Any], Any] = _same

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class SeedPhase:
    """What the collection of one seed file did (totals over all ranks)."""

    name: str  # "seed tasks" or "induction seeds"
    path: Path
    target: int
    existing: int = 0  # valid rows the file held before this run
    tasks: list[Task] = field(default_factory=list)  # every task of the file after the run, existing ones first
    rounds: int = 0
    proposals: int = 0
    verdicts: Counter = field(default_factory=Counter)  # one verdict per proposal: ok, duplicate or what failed
    stop: str = ""
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return len(self.tasks)

    @property
    def added(self) -> int:
        return len(self.tasks) - self.existing

    @property
    def valid_rate(self) -> float:
        """Fraction of proposals the executor accepted (duplicates included)."""
        valid = self.verdicts["ok"] + self.verdicts["duplicate"]
        return valid / self.proposals if self.proposals else 0.0

    def histogram(self, top: int = 8) -> str:
        """The most frequent verdicts, e.g. ``missing_answer 412, runtime_error 37``."""
        return ", ".join(f"{name} {n}" for name, n in self.verdicts.most_common(top)) or "no proposals"

    def shortfall(self, minimum: int) -> str | None:
        """A message naming what happened when the file holds fewer than ``minimum`` tasks, else None."""
        if self.count >= minimum:
            return None
        return (
            f"Seeding collected {self.count} of {self.target} {self.name} (at least {minimum} needed) in {self.rounds} "
            f"rounds: {self.proposals} proposals, {self.valid_rate:.0%} valid; stopped: {self.stop}. Proposal "
            f"verdicts: {self.histogram()}. What was collected stays in {self.path}, and a rerun continues from it. "
            "To try: a larger or code-trained model; the prompt format that suits it (r1 for base models, chat for "
            "instruct models); a longer generation budget; or start from a seed file (`azr-trl seed`, seed_files)."
        )


@dataclass
class SeedReport:
    """What one seed-generation run did: the triplet phase, then the induction phase if one was asked for."""

    triplets: SeedPhase
    induction: SeedPhase | None = None

    @property
    def phases(self) -> list[SeedPhase]:
        return [self.triplets] + ([self.induction] if self.induction is not None else [])


def _triplet_row(task: Task) -> dict[str, Any]:
    return {
        "program": task.program,
        "input": task.input,
        "output": task.output,
        "valid": True,
        "status": "ok",
        "error": None,
    }


def _induction_row(task: Task) -> dict[str, Any]:
    return {
        "program": task.program,
        "inputs": task.inputs,
        "outputs": task.outputs,
        "message": task.message,
        "valid": True,
        "status": "ok",
        "error": None,
    }


def _resume(path: Path, executor: Any, task_types: Sequence[str], ranks: RankGroup) -> list[Task]:
    """Tasks already in an output file (re-validated by the main process, then shared); a missing file is created."""
    tasks: list[Task] | None = None
    if ranks.is_main:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            tasks = []
        else:
            tasks, errors = load_seed_file(path, executor, task_types=task_types)
            for error in errors:
                logger.warning("Ignoring a row of the existing output (it stays in the file): %s", error)
    return ranks.broadcast(tasks)


@dataclass
class _Collector:
    """One generation setup; :meth:`collect` fills one seed file, round by round, on every rank in lockstep."""

    generate: GenerateFn
    executor: Any
    batch_size: int  # proposals per round and rank
    max_rounds: int
    patience: int
    fmt: str
    require_think: bool
    progress: bool
    ranks: RankGroup
    budget: PromptBudget | None = None

    def collect(
        self,
        phase: SeedPhase,
        specs: Sequence[TaskSpec],
        references: Callable[[], list[Task]],
        keys: set[str],
        to_row: Callable[[Task], dict[str, Any]],
        on_task: Callable[[Task], None] = lambda task: None,
    ) -> None:
        """Propose, validate and append distinct new tasks to ``phase.path`` until it holds ``phase.target``.

        Stops early after ``max_rounds`` rounds, or after ``patience`` rounds in a row without a new task. Every
        decision depends only on gathered (all-rank) results, so every rank runs the same rounds.
        """
        from tqdm.auto import tqdm

        start = time.perf_counter()
        idle = 0
        bar = tqdm(
            total=phase.target,
            initial=min(phase.count, phase.target),
            desc=phase.name,
            disable=not (self.progress and self.ranks.is_main),
            unit="task",
        )
        try:
            while True:
                if phase.count >= phase.target:
                    phase.stop = "reached the target"
                    break
                if phase.rounds >= self.max_rounds:
                    phase.stop = f"the maximum of {self.max_rounds} rounds"
                    break
                if idle >= self.patience:
                    phase.stop = f"no new valid task in {idle} rounds in a row"
                    break
                spec = specs[phase.rounds % len(specs)]  # alternate deduction/abduction proposals, as the reference
                phase.rounds += 1
                new = self._round(phase, spec, references, keys, to_row, on_task)
                idle = 0 if new else idle + 1
                bar.update(min(new, phase.target - bar.n))
                bar.set_postfix(valid=f"{phase.valid_rate:.0%}", round=phase.rounds)
        finally:
            bar.close()
            phase.seconds += time.perf_counter() - start

    def _round(self, phase, spec, references, keys, to_row, on_task) -> int:
        """One round: this rank proposes and validates its share; the valid tasks of all ranks are applied in order."""
        refs = [references() for _ in range(self.batch_size)]
        if self.budget is not None:
            refs = [self.budget.fitting_references(spec, r, self.fmt) or [zero_triplet()] for r in refs]
        completions = self.generate([spec.propose_prompt(r, self.fmt) for r in refs])
        failed: Counter = Counter()
        items = []
        for r, completion in zip(refs, completions, strict=True):
            proposal = spec.parse_proposal(completion, r, require_think=self.require_think)
            if proposal.candidate is None:
                failed[proposal.error or "unknown"] += 1
            else:
                items.append((spec, proposal.candidate))
        valid = []
        for task, verdict, _ in run_validation(self.executor, items):
            if task is None:
                failed[verdict] += 1
            else:
                valid.append(task)
        new = 0
        handle = phase.path.open("a") if self.ranks.is_main else None
        try:
            for rank_valid, rank_failed in self.ranks.gather((valid, failed)):
                phase.proposals += len(rank_valid) + sum(rank_failed.values())
                phase.verdicts.update(rank_failed)
                for task in rank_valid:
                    key = task.key()
                    if key in keys:
                        phase.verdicts["duplicate"] += 1
                        continue
                    phase.verdicts["ok"] += 1
                    if phase.count >= phase.target:
                        continue
                    keys.add(key)
                    if handle is not None:
                        handle.write(json.dumps(to_row(task)) + "\n")
                        handle.flush()  # each accepted row is on disk at once: an interrupted run resumes from it
                    phase.tasks.append(task)
                    on_task(task)
                    new += 1
        finally:
            if handle is not None:
                handle.close()
        return new


def generate_seed_tasks(
    generate: GenerateFn,
    executor: Any,
    output: str | os.PathLike,
    num_tasks: int,
    induction_output: str | os.PathLike | None = None,
    num_induction: int | None = None,
    batch_size: int = 8,
    num_references: int = 6,
    num_inputs: int = 10,
    max_rounds: int = DEFAULT_SEED_MAX_ROUNDS,
    patience: int = DEFAULT_SEED_PATIENCE,
    fmt: str = "chat",
    require_think: bool = False,
    seed: int = 0,
    progress: bool = True,
    specs: dict[str, TaskSpec] | None = None,
    ranks: RankGroup = RankGroup(),
    min_tasks: int | None = None,
    prompt_budget: PromptBudget | None = None,
) -> SeedReport:
    """Grow seed files with tasks proposed by a model (no training), like the reference's seeding stage.

    Deduction and abduction proposals alternate; each prompt shows up to ``num_references`` tasks drawn from the zero
    triplet plus every task collected so far. Valid, distinct tasks are appended to ``output`` (and re-read from it on
    the next run, so an interrupted run resumes) until it holds ``num_tasks`` rows. With ``induction_output``,
    induction items are then proposed on the collected programs until that file holds ``num_induction`` rows, provided
    the triplet file holds at least ``min_tasks`` (default ``num_tasks``) rows.

    Each file gets at most ``max_rounds`` rounds of ``batch_size`` proposals per rank, and its collection stops after
    ``patience`` rounds in a row without a new task; the report says how far each file got and why it stopped (see
    :meth:`SeedPhase.shortfall`). ``specs`` (task type -> :class:`TaskSpec`) overrides the default task specs, e.g.
    with a trainer's parsing options. With several ``ranks``, call this on every rank: each proposes its share of
    every round and all end with the same tasks (files are written by the main process). With a ``prompt_budget``, a
    prompt shows only the references that fit it (see :meth:`PromptBudget.fitting_references`); the caller checks
    first that the zero triplet's prompts fit it (:func:`check_seed_prompt_budget`).
    """
    if max_rounds < 1 or patience < 1:
        raise ValueError(f"max_rounds and patience must be at least 1, got {max_rounds} and {patience}.")
    specs = seed_specs(num_inputs, specs)
    rng = random.Random(f"{seed}-rank{ranks.rank}")  # each rank draws its own references from the shared pool
    collector = _Collector(
        generate, executor, batch_size, max_rounds, patience, fmt, require_think, progress, ranks, prompt_budget
    )

    path = Path(output)
    existing = _resume(path, executor, ("deduction",), ranks)
    triplets = SeedPhase("seed tasks", path, num_tasks, existing=len(existing), tasks=list(existing))
    pool = [zero_triplet()] + existing  # the references grow as tasks arrive
    collector.collect(
        triplets,
        specs=[specs[t] for t in SEED_TRIPLET_TYPES],
        references=lambda: rng.sample(pool, min(num_references, len(pool))),
        keys={t.key() for t in pool},
        to_row=_triplet_row,
        on_task=pool.append,
    )
    report = SeedReport(triplets)
    if induction_output is None or triplets.count < (num_tasks if min_tasks is None else min_tasks):
        return report

    ind_path = Path(induction_output)
    ind_existing = _resume(ind_path, executor, ("induction",), ranks)
    target = num_tasks if num_induction is None else num_induction
    report.induction = SeedPhase(
        "induction seeds", ind_path, target, existing=len(ind_existing), tasks=list(ind_existing)
    )
    collector.collect(
        report.induction,
        specs=[specs["induction"]],
        references=lambda: [rng.choice(pool)],
        keys={t.key() for t in ind_existing},
        to_row=_induction_row,
    )
    return report
