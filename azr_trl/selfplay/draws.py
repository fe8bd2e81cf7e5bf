"""The self-play task draws: the references a propose prompt shows and the tasks the solver gets, within the prompt
token budget.

A reference or task whose prompt does not fit the budget (:class:`~azr_trl.tasks.prompt_budget.PromptBudget`) is
skipped, marked in the task buffer so it is never drawn again for that role (the mark is saved with the buffer), and
replaced by another draw. When nothing fits, the zero task stands in, so a step always completes. Every rank's marks
are applied on every rank at the end of the step and counted in ``azr/too_long/references`` and
``azr/too_long/solve_tasks``.

The draws read what :class:`DrawContext` names, nothing else of the trainer.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from accelerate.utils import gather_object

from ..tasks.prompt_budget import PromptBudget, zero_reference
from ..tasks.registry import zero_task
from ..tasks.task import Task


if TYPE_CHECKING:
    from ..azr_config import AZRConfig
    from ..tasks.base import TaskSpec
    from .buffer import TaskBuffer


logger = logging.getLogger(__name__)


class DrawContext(Protocol):
    """What the draws read: the buffer and how to sample it, the task specs and prompt format that build the prompts,
    the engine's prompt budget and tokenisation, the rank and step that seed the solver draw, and the list that
    collects this rank's marks until the end of the step. The trainer is one (its GRPO and engine methods provide
    ``_prompt_token_budget`` and ``_tokenize_prompts``)."""

    args: AZRConfig  # reference_sampling, solver_sampling, solve_per_type, seed
    accelerator: Any  # process_index, num_processes
    state: Any  # global_step
    buffer: TaskBuffer
    specs: Mapping[str, TaskSpec]
    prompt_format: str
    _too_long_marks: list[tuple[str, str, Task]]  # (role, prompt task type, task) marked since the last step

    def _prompt_token_budget(self) -> int: ...

    def _tokenize_prompts(self, prompts: list) -> tuple: ...


def prompt_budget(context: DrawContext) -> PromptBudget:
    """The run's budget, counted as its engine tokenizes."""
    return PromptBudget(context._prompt_token_budget(), lambda prompt: prompt_length(context, prompt))


def prompt_length(context: DrawContext, prompt) -> int:
    """Tokens of ``prompt`` as the generation engine gets it."""
    return len(context._tokenize_prompts([prompt])[0][0])


def sample_references(context: DrawContext, task_type: str, k: int, rng: random.Random) -> list[Task]:
    """Up to ``k`` references for a ``task_type`` propose prompt that fits the budget.

    A reference too long on its own is marked and another set is drawn; references that fit one by one but not
    together are dropped, longest first (:meth:`PromptBudget.fitting_references`). With no reference left, the zero
    triplet.
    """
    spec, fmt = context.specs[task_type], context.prompt_format

    def draw() -> list[Task]:
        return context.buffer.sample_references(task_type, k, rng, strategy=context.args.reference_sampling)

    def mark_and_draw(too_long: list[Task]) -> list[Task]:
        for reference in too_long:
            _skip(context, reference, "propose", task_type)
        return draw()  # the marked ones are out of the pool now

    chosen = prompt_budget(context).fitting_references(spec, draw(), fmt, replace_too_long=mark_and_draw)
    if chosen:
        return chosen
    _warn_once(
        context, ("propose", task_type), f"No {task_type} reference fits the prompt budget: using the zero task."
    )
    return [zero_reference(task_type)]


def sample_solve_tasks(context: DrawContext, task_type: str, n: int, rng: random.Random) -> list[Task]:
    """``n`` solver tasks whose prompt fits the budget: the others are marked and replaced by new draws."""
    tasks: list[Task] = []
    while len(tasks) < n:
        drawn = context.buffer.sample_solve(task_type, n - len(tasks), strategy=context.args.solver_sampling, rng=rng)
        if not drawn:  # every task of this type is marked
            _warn_once(
                context, ("solve", task_type), f"No {task_type} task fits the prompt budget: solving the zero task."
            )
            return tasks + [zero_task(task_type)] * (n - len(tasks))
        tasks += [task for task in drawn if solve_prompt_fits(context, task)]
    return tasks


def draw_solve_tasks(context: DrawContext, task_type: str) -> list[Task]:
    """This rank's slice of one draw of solver tasks for all ranks: distinct tasks while the buffer has them.

    Every rank holds the same buffer and seeds the draw with the same (seed, step, task type), so all ranks draw the
    same ``solve_per_type * world_size`` tasks and each takes its own slice (paper: 64 distinct tasks per type).
    """
    n, world, rank = context.args.solve_per_type, context.accelerator.num_processes, context.accelerator.process_index
    rng = random.Random(f"{context.args.seed}-{context.state.global_step}-solve-{task_type}")
    drawn = sample_solve_tasks(context, task_type, n * world, rng)  # tasks whose solve prompt fits
    return drawn[rank * n : (rank + 1) * n]


def solve_prompt_fits(context: DrawContext, task: Task) -> bool:
    """Whether ``task``'s solve prompt fits the budget; a task that does not is marked."""
    if context.buffer.is_too_long(task, "solve", task.task_type):
        return False
    if prompt_budget(context).fits(context.specs[task.task_type].solve_prompt(task, context.prompt_format)):
        return True
    _skip(context, task, "solve", task.task_type)
    return False


def share_too_long_marks(context: DrawContext) -> dict[str, float]:
    """Apply every rank's new marks on every rank (buffers stay identical); their counts, summed over ranks."""
    marks = gather_object(context._too_long_marks)
    context._too_long_marks = []
    # Solver tasks are drawn for all ranks at once, so several ranks may mark the same task: count each mark once.
    distinct = {(role, task_type, task.key()): role for role, task_type, task in marks}
    for role, task_type, task in marks:
        context.buffer.mark_too_long(task, role, task_type)
    return {
        "azr/too_long/references": float(sum(role == "propose" for role in distinct.values())),
        "azr/too_long/solve_tasks": float(sum(role == "solve" for role in distinct.values())),
    }


def _skip(context: DrawContext, task: Task, role: str, task_type: str) -> None:
    if context.buffer.mark_too_long(task, role, task_type):
        context._too_long_marks.append((role, task_type, task))


def _warn_once(context: DrawContext, what: tuple[str, str], message: str) -> None:
    warned = context.__dict__.setdefault("_too_long_warned", set())
    if what not in warned:
        warned.add(what)
        logger.warning(message)
