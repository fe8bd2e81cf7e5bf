"""`Rollouts`: one generation call's rows, carried together instead of as parallel lists."""

from __future__ import annotations

from dataclasses import dataclass


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
