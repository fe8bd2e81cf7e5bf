"""The rollouts of one step: the proposer and solver prompts (on the tasks :mod:`azr_trl.selfplay.draws` draws), and
the rows that come back.

`Rollouts` carries one generation call's rows together (prompts, token ids, sampling log-probs, texts) instead of as
parallel lists.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .draws import draw_solve_tasks, sample_references


if TYPE_CHECKING:
    from ..tasks.task import Task
    from .draws import DrawContext


@dataclass
class Rollouts:
    """Sampled completions, row-aligned: row ``i`` is the completion of ``prompts[i]``."""

    prompts: list  # as the engine got them: strings, or chat messages
    task_types: list[str]  # the task type each prompt was built for
    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    sampling_logps: list[list[float | None]] | None  # the engine's per-token log-probs (vLLM), None on HF generate
    texts: list[str]  # the decoded completions

    def __add__(self, other: Rollouts) -> Rollouts:
        """The rows of ``self`` followed by those of ``other`` (log-probs only when both have them)."""
        known = self.sampling_logps is not None and other.sampling_logps is not None
        return Rollouts(
            self.prompts + other.prompts,
            self.task_types + other.task_types,
            self.prompt_ids + other.prompt_ids,
            self.completion_ids + other.completion_ids,
            self.sampling_logps + other.sampling_logps if known else None,
            self.texts + other.texts,
        )

    def completions(self, prompt_format: str) -> list:
        """The completions as GRPO's reward functions and completions table take them (messages for chat prompts)."""
        if prompt_format == "chat":
            return [[{"role": "assistant", "content": text}] for text in self.texts]
        return self.texts


def propose_prompts(context: DrawContext, rng: random.Random) -> tuple[list[list[Task]], list, list[str]]:
    """``propose_per_type`` proposer prompts per task type: (references, prompts, task types) per row."""
    args = context.args
    refs, prompts, types = [], [], []
    for task_type in args.task_types:
        k = 1 if task_type == "induction" else args.num_references
        for _ in range(args.propose_per_type):
            chosen = sample_references(context, task_type, k, rng)
            refs.append(chosen)
            prompts.append(context.specs[task_type].propose_prompt(chosen, context.prompt_format))
            types.append(task_type)
    return refs, prompts, types


def solve_prompts(context: DrawContext) -> tuple[list[Task], list, list[str]]:
    """``solve_per_type`` solver prompts per task type on buffer tasks: (tasks, prompts, task types) per row."""
    tasks, prompts, types = [], [], []
    for task_type in context.args.task_types:
        for task in draw_solve_tasks(context, task_type):
            tasks.append(task)
            prompts.append(context.specs[task_type].solve_prompt(task, context.prompt_format))
            types.append(task_type)
    return tasks, prompts, types
