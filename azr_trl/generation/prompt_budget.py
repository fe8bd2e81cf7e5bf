"""Prompts that fit the generation engine: references and solver tasks are drawn within a token budget.

:class:`PromptBudget` holds the rule both the trainer and seeding (``azr-trl seed``, the seeding phase) follow: a
propose prompt shows its references minus the longest ones until it fits. The trainer's budget (from
:meth:`AZRTrainer._prompt_token_budget`) is ``max_prompt_tokens``, the run's prompt ceiling that bounds the padded
micro-batches the memory plan sizes, or less where the engine's prompt + completion limit leaves less room next to
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from accelerate.utils import gather_object

from ..tasks.registry import zero_task
from ..tasks.task import Task


if TYPE_CHECKING:
    from ..azr_trainer import AZRTrainer
    from ..tasks.base import TaskSpec


logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromptBudget:
    """The most prompt tokens the generation engine takes next to the completion budget, and a prompt's token count.

    A longer prompt makes a vLLM engine refuse it and HF ``generate`` run past the model's positions.
    """

    tokens: int
    length: Callable[[Any], int]  # prompt -> tokens

    def fits(self, prompt: Any) -> bool:
        return self.length(prompt) <= self.tokens

    def fitting_references(
        self,
        spec: TaskSpec,
        references: Sequence[Task],
        fmt: str,
        replace_too_long: Callable[[list[Task]], list[Task]] | None = None,
    ) -> list[Task]:
        """``references`` minus the longest ones until their ``spec`` propose prompt fits; empty when none fits.

        With ``replace_too_long``, the references too long even on their own are handed to it first and the set it
        returns is fitted instead (the trainer marks them and draws again); without it they are dropped as the
        longest. Ties drop the first of the longest.
        """
        chosen, lengths = list(references), None
        while chosen and not self.fits(spec.propose_prompt(chosen, fmt)):
            if lengths is None:  # one count per reference: dropping another does not change it
                lengths = [self.length(spec.propose_prompt([reference], fmt)) for reference in chosen]
                too_long = [r for r, length in zip(chosen, lengths, strict=True) if length > self.tokens]
                if too_long and replace_too_long is not None:
                    chosen, lengths = list(replace_too_long(too_long)), None
                    continue
            longest = lengths.index(max(lengths))
            del chosen[longest], lengths[longest]
        return chosen

    def shortest_prompts_over(
        self, specs: Iterable[TaskSpec], fmt: str, roles: Sequence[str] = ("propose", "solve")
    ) -> Iterator[tuple[str, str, int]]:
        """``(task type, role, tokens)`` of each shortest prompt (a zero task's) longer than the budget."""
        for spec in specs:
            for role in roles:
                if role == "propose":
                    prompt = spec.propose_prompt([zero_reference(spec.task_type)], fmt)
                else:
                    prompt = spec.solve_prompt(zero_task(spec.task_type), fmt)
                length = self.length(prompt)
                if length > self.tokens:
                    yield spec.task_type, role, length


def trainer_prompt_budget(trainer: AZRTrainer) -> PromptBudget:
    """The trainer's budget (:meth:`AZRTrainer._prompt_token_budget`), counted as its engine tokenizes."""
    return PromptBudget(trainer._prompt_token_budget(), lambda prompt: prompt_length(trainer, prompt))


def check_prompt_budget(trainer: AZRTrainer, seeding_specs: Iterable[TaskSpec] = ()) -> None:
    """Refuse a setup where even the shortest prompts (the zero tasks') are over the budget.

    ``seeding_specs``: the specs the seeding phase proposes with besides the trained ones (it checks nothing itself).
    """
    budget = trainer_prompt_budget(trainer)
    over = budget.shortest_prompts_over(trainer.specs.values(), trainer.prompt_format)
    seeding = budget.shortest_prompts_over(seeding_specs, trainer.prompt_format, roles=("propose",))
    for task_type, role, length in (*over, *seeding):
        ceiling, limit = trainer.args.max_prompt_tokens, trainer._engine_token_limit
        if budget.tokens == ceiling:
            why = f"max_prompt_tokens={ceiling}. Raise max_prompt_tokens."
        else:
            why = (
                f"the generation engine takes {limit} tokens in all, which leaves {budget.tokens} for a prompt next "
                f"to max_completion_length={trainer.max_completion_length}. Lower max_completion_length, or raise "
                "the engine's limit (`trl vllm-serve --max_model_len`, `vllm_max_model_length`)."
            )
        raise ValueError(f"The shortest {task_type} {role} prompt has {length} tokens, more than {why}")


def sample_references(trainer: AZRTrainer, task_type: str, k: int, rng: random.Random) -> list[Task]:
    """Up to ``k`` references for a ``task_type`` propose prompt that fits the budget.

    A reference too long on its own is marked and another set is drawn; references that fit one by one but not
    together are dropped, longest first (:meth:`PromptBudget.fitting_references`). With no reference left, the zero
    triplet.
    """
    spec, fmt = trainer.specs[task_type], trainer.prompt_format

    def draw() -> list[Task]:
        return trainer.buffer.sample_references(task_type, k, rng, strategy=trainer.args.reference_sampling)

    def mark_and_draw(too_long: list[Task]) -> list[Task]:
        for reference in too_long:
            _skip(trainer, reference, "propose", task_type)
        return draw()  # the marked ones are out of the pool now

    chosen = trainer_prompt_budget(trainer).fitting_references(spec, draw(), fmt, replace_too_long=mark_and_draw)
    if chosen:
        return chosen
    _warn_once(
        trainer, ("propose", task_type), f"No {task_type} reference fits the prompt budget: using the zero task."
    )
    return [zero_reference(task_type)]


def sample_solve_tasks(trainer: AZRTrainer, task_type: str, n: int, rng: random.Random) -> list[Task]:
    """``n`` solver tasks whose prompt fits the budget: the others are marked and replaced by new draws."""
    tasks: list[Task] = []
    while len(tasks) < n:
        drawn = trainer.buffer.sample_solve(task_type, n - len(tasks), strategy=trainer.args.solver_sampling, rng=rng)
        if not drawn:  # every task of this type is marked
            _warn_once(
                trainer, ("solve", task_type), f"No {task_type} task fits the prompt budget: solving the zero task."
            )
            return tasks + [zero_task(task_type)] * (n - len(tasks))
        tasks += [task for task in drawn if solve_prompt_fits(trainer, task)]
    return tasks


def solve_prompt_fits(trainer: AZRTrainer, task: Task) -> bool:
    """Whether ``task``'s solve prompt fits the budget; a task that does not is marked."""
    if trainer.buffer.is_too_long(task, "solve", task.task_type):
        return False
    if trainer_prompt_budget(trainer).fits(trainer.specs[task.task_type].solve_prompt(task, trainer.prompt_format)):
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


def _skip(trainer: AZRTrainer, task: Task, role: str, task_type: str) -> None:
    if trainer.buffer.mark_too_long(task, role, task_type):
        trainer._too_long_marks.append((role, task_type, task))


def zero_reference(task_type: str) -> Task:
    """The shortest reference: the zero task (an induction prompt shows a deduction program)."""
    return zero_task("deduction" if task_type == "induction" else task_type)


def _warn_once(trainer: AZRTrainer, what: tuple[str, str], message: str) -> None:
    warned = trainer.__dict__.setdefault("_too_long_warned", set())
    if what not in warned:
        warned.add(what)
        logger.warning(message)
