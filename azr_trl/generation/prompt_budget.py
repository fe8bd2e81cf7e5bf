"""Prompts that fit the generation engine: references and solver tasks are drawn within a token budget.

The budget (from :meth:`AZRTrainer._prompt_token_budget`) is the engine's prompt + completion limit minus
``max_completion_length``: a longer prompt makes a vLLM server refuse the whole batch (HTTP 400), a colocated engine
raise, and HF ``generate`` run past the model's positions. A reference or task whose prompt does not fit is skipped,
marked in the task buffer so it is never drawn again for that role (the mark is saved with the buffer), and replaced
by another draw. When nothing fits, the zero task stands in, so a step always completes. Every rank's marks are
applied on every rank at the end of the step and counted in ``azr/too_long/references`` and
``azr/too_long/solve_tasks``.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING

from accelerate.utils import gather_object

from ..seeding.seed_files import zero_induction_task, zero_triplet
from ..tasks.task import Task


if TYPE_CHECKING:
    from ..azr_trainer import AZRTrainer


logger = logging.getLogger(__name__)


def check_prompt_budget(trainer: AZRTrainer) -> None:
    """Refuse a setup where even the shortest prompts (the zero tasks') leave no room for a completion."""
    budget = trainer._prompt_token_budget()
    if budget is None:
        if trainer.accelerator.is_main_process:
            logger.warning("The model states no maximum length: prompts are not checked against a token budget.")
        return
    for task_type, spec in trainer.specs.items():
        for role, prompt in (
            ("propose", spec.propose_prompt([_zero_reference(task_type)], trainer.prompt_format)),
            ("solve", spec.solve_prompt(_zero_task(task_type), trainer.prompt_format)),
        ):
            length = prompt_length(trainer, prompt)
            if length > budget:
                limit = budget + trainer.max_completion_length
                raise ValueError(
                    f"The shortest {task_type} {role} prompt has {length} tokens, but the generation engine takes "
                    f"{limit} tokens in all, which leaves {budget} for a prompt next to max_completion_length="
                    f"{trainer.max_completion_length}. Lower max_completion_length, or raise the engine's limit "
                    "(`trl vllm-serve --max_model_len`, `vllm_max_model_length`)."
                )


def sample_references(trainer: AZRTrainer, task_type: str, k: int, rng: random.Random) -> list[Task]:
    """Up to ``k`` references for a ``task_type`` propose prompt that fits the budget.

    A reference too long on its own is marked and another set is drawn; references that fit one by one but not
    together are dropped, longest first. With no reference left, the zero triplet.
    """
    spec, fmt = trainer.specs[task_type], trainer.prompt_format

    def draw() -> list[Task]:
        return trainer.buffer.sample_references(task_type, k, rng, strategy=trainer.args.reference_sampling)

    chosen = draw()
    while chosen and not _fits(trainer, prompt_length(trainer, spec.propose_prompt(chosen, fmt))):
        lengths = [prompt_length(trainer, spec.propose_prompt([reference], fmt)) for reference in chosen]
        too_long = [r for r, length in zip(chosen, lengths, strict=True) if not _fits(trainer, length)]
        for reference in too_long:
            _skip(trainer, reference, "propose", task_type)
        if too_long:
            chosen = draw()  # the marked ones are out of the pool now
        else:
            chosen.pop(lengths.index(max(lengths)))
    if chosen:
        return chosen
    _warn_once(
        trainer, ("propose", task_type), f"No {task_type} reference fits the prompt budget: using the zero task."
    )
    return [_zero_reference(task_type)]


def sample_solve_tasks(trainer: AZRTrainer, task_type: str, n: int, rng: random.Random) -> list[Task]:
    """``n`` solver tasks whose prompt fits the budget: the others are marked and replaced by new draws."""
    tasks: list[Task] = []
    while len(tasks) < n:
        drawn = trainer.buffer.sample_solve(task_type, n - len(tasks), strategy=trainer.args.solver_sampling, rng=rng)
        if not drawn:  # every task of this type is marked
            _warn_once(
                trainer, ("solve", task_type), f"No {task_type} task fits the prompt budget: solving the zero task."
            )
            return tasks + [_zero_task(task_type)] * (n - len(tasks))
        tasks += [task for task in drawn if solve_prompt_fits(trainer, task)]
    return tasks


def solve_prompt_fits(trainer: AZRTrainer, task: Task) -> bool:
    """Whether ``task``'s solve prompt fits the budget; a task that does not is marked."""
    if trainer.buffer.is_too_long(task, "solve", task.task_type):
        return False
    if trainer._prompt_token_budget() is None:
        return True
    if _fits(trainer, prompt_length(trainer, trainer.specs[task.task_type].solve_prompt(task, trainer.prompt_format))):
        return True
    _skip(trainer, task, "solve", task.task_type)
    return False


def share_too_long_marks(trainer: AZRTrainer) -> dict[str, float]:
    """Apply every rank's new marks on every rank (buffers stay identical); their counts, summed over ranks."""
    marks = gather_object(trainer._too_long_marks)
    trainer._too_long_marks = []
    # Solver tasks are drawn for all ranks at once, so several ranks may mark the same task: count each mark once.
    distinct = {(role, task_type, task.key()): role for role, task_type, task in marks}
    for role, task_type, task in marks:
        trainer.buffer.mark_too_long(task, role, task_type)
    return {
        "azr/too_long/references": float(sum(role == "propose" for role in distinct.values())),
        "azr/too_long/solve_tasks": float(sum(role == "solve" for role in distinct.values())),
    }


def prompt_length(trainer: AZRTrainer, prompt) -> int:
    """Tokens of ``prompt`` as the trainer's generation engine gets it."""
    return len(trainer._tokenize_prompts([prompt])[0][0])


def _fits(trainer: AZRTrainer, length: int) -> bool:
    budget = trainer._prompt_token_budget()
    return budget is None or length <= budget


def _skip(trainer: AZRTrainer, task: Task, role: str, task_type: str) -> None:
    if trainer.buffer.mark_too_long(task, role, task_type):
        trainer._too_long_marks.append((role, task_type, task))


def _zero_reference(task_type: str) -> Task:
    """The shortest reference: the zero triplet (an induction prompt shows a deduction program)."""
    return zero_triplet("deduction" if task_type == "induction" else task_type)


def _zero_task(task_type: str) -> Task:
    return zero_induction_task() if task_type == "induction" else zero_triplet(task_type)


def _warn_once(trainer: AZRTrainer, what: tuple[str, str], message: str) -> None:
    warned = trainer.__dict__.setdefault("_too_long_warned", set())
    if what not in warned:
        warned.add(what)
        logger.warning(message)
