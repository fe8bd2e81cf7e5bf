"""Prompts that fit a token budget: the rule the trainer and seeding (``azr-trl seed``, the seeding phase) follow.

A generation engine takes a prompt and its completion within one limit: a longer prompt makes a vLLM server refuse
the whole batch (HTTP 400), a colocated engine raise, and HF ``generate`` run past the model's positions. The trainer's
budget is ``max_prompt_tokens``, the run's prompt ceiling that bounds the padded micro-batches the memory plan sizes,
or less where the engine's prompt + completion limit leaves less room next to ``max_completion_length``
(:meth:`~azr_trl.generation.trainer_mixin.EngineGenerationMixin._prompt_token_budget`).

:class:`PromptBudget` is the rule itself: a propose prompt shows its references minus the longest ones until it fits,
and the shortest prompts of a task type (a zero task's) tell whether a setup can work at all. What the trainer does
with a task too long for its prompt (mark it, draw another, count it) is the self-play draws'
(:mod:`azr_trl.selfplay.draws`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .registry import zero_task
from .task import Task


if TYPE_CHECKING:
    from .base import TaskSpec


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


def zero_reference(task_type: str) -> Task:
    """The shortest reference: the zero task (an induction prompt shows a deduction program)."""
    return zero_task("deduction" if task_type == "induction" else task_type)
