"""The trainer's one path to the generation engine: HF `generate`, vLLM server or vLLM colocate.

`EngineGenerationMixin` sits in front of `GRPOTrainer` in `AZRTrainer`'s bases. Training steps, Monte-Carlo rollouts,
the seeding phase and the in-training evaluation (with vLLM) all sample through `_sample`, which honours the engine's
limits: the prompt token budget, fixed-size HF chunks (the same number of calls on every rank), banned token ids, and
per-call sampling settings. Rows that only keep the ranks in step (padding) cost the engine at most one token each
(`padding.py`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from accelerate.utils import broadcast_object_list, gather_object

from .generators import model_token_limit
from .padding import answer_padding_cheaply, padding_prompt_ids
from .push_watchdog import PushWatchdog
from .vllm_server import VLLMServerUnavailableError, guard_vllm_server


if TYPE_CHECKING:
    from ..tasks.base import TaskSpec
    from ..tasks.prompt_budget import PromptBudget


class EngineGenerationMixin:
    """Generation methods of `AZRTrainer` (they read GRPO's engine attributes: `use_vllm`, `vllm_generation`, ...)."""

    # ------------------------------------------------------------------ set-up
    def _set_up_engine(self) -> None:
        """After GRPO built its engine: colocated vLLM on CPU syncs through vLLM's reload; a server's client waits
        out restarts and dropped connections (``_vllm_server_retry``) with its NCCL calls under the push watchdog;
        padding rows cost at most one token."""
        args = self.args
        self._vllm_server_retry = None
        if not self.use_vllm:
            return
        if args.vllm_mode == "colocate":
            from .vllm_cpu import sync_weights_by_reload_on_cpu

            sync_weights_by_reload_on_cpu(self.vllm_generation)
        else:
            timeout = args.vllm_weight_push_timeout
            self._vllm_server_retry = guard_vllm_server(
                self.vllm_generation,
                args.vllm_server_retry_seconds,
                args.vllm_server_retry_max_interval,
                PushWatchdog(timeout, self._resume_hint) if timeout > 0 else None,
            )
        answer_padding_cheaply(self.vllm_generation, self._tokenizer)

    # ------------------------------------------------------------------ generation
    def _sample(
        self,
        prompts: list,
        num_generations: int = 1,
        temperature: float | None = None,
        max_tokens: int | None = None,
        padding: int = 0,
    ):
        """Generate through GRPO's backend dispatch. ``prompts`` holds each prompt ``num_generations`` times in a row.

        ``temperature`` and ``max_tokens`` override the run's settings for this call. ``padding`` adds that many
        prompts (times ``num_generations``) that only keep this rank's call the size of the other ranks' (a vLLM
        server gathers every rank's prompts and slices the answers by equal counts): the engine answers them with
        at most one token, and they are not returned. HF generate needs none: its ranks only need the same number
        of calls, which the chunk loop keeps.
        """
        prompt_ids, _, _ = self._tokenize_prompts(prompts) if prompts else ([], None, None)
        rows = len(prompt_ids)
        if padding and self.use_vllm:
            prompt_ids = prompt_ids + [padding_prompt_ids(self._tokenizer)] * (padding * num_generations)
        with self._sampling(temperature, max_tokens):
            try:
                completion_ids, logprobs = self._generate_in_chunks(prompt_ids, num_generations)
            except VLLMServerUnavailableError as error:
                raise self._checkpoint_before_stop(error) from error
        prompt_ids, completion_ids = prompt_ids[:rows], completion_ids[:rows]
        logprobs = None if logprobs is None else logprobs[:rows]
        texts = self.processing_class.batch_decode(completion_ids, skip_special_tokens=True)
        return prompt_ids, completion_ids, logprobs, texts

    def _generate_in_chunks(self, prompt_ids: list[list[int]], num_generations: int):
        """GRPO's generation call; on HF generate, in chunks of ``generation_chunk_size`` sequences.

        vLLM batches (and pages its KV cache) by itself, so it gets everything at once. Every rank makes as many HF
        calls as the rank with the most chunks: under ZeRO-3 entering generation gathers the parameters, a collective.
        A rank with fewer chunks makes one-token calls on one prompt for the rest.
        """
        if self.use_vllm:
            return self._generate_single_turn(prompt_ids, None, {}, num_generations)
        size = self.args.generation_chunk_size
        chunks = [prompt_ids[i : i + size] for i in range(0, len(prompt_ids), size)]
        calls = len(chunks)
        if self.accelerator.num_processes > 1:
            calls = max(gather_object([calls]))
        completion_ids: list[list[int]] = []
        for i in range(calls):
            if i < len(chunks):
                completion_ids += self._generate_single_turn(chunks[i], None, {}, num_generations)[0]
            else:
                with self._sampling(max_tokens=1):  # keeps this rank in step; its output is dropped
                    self._generate_single_turn([padding_prompt_ids(self._tokenizer)], None, {}, 1)
        return completion_ids, None

    def _ban_token_ids(self) -> None:
        """Keep ``banned_token_ids`` out of every completion, in the form the generation backend takes."""
        banned = sorted(set(self.args.banned_token_ids))
        if not banned:
            return
        if self.use_vllm:
            # vLLM (server and colocate) takes logit biases by token id and clamps them to [-100, 100].
            kwargs = self.vllm_generation.generation_kwargs
            bias = {**(kwargs.get("logit_bias") or {}), **dict.fromkeys(banned, -100.0)}
            self.vllm_generation.generation_kwargs = {**kwargs, "logit_bias": bias}
        else:
            # transformers sets the logits of suppressed tokens to -inf before sampling.
            suppressed = sorted({*(self.generation_config.suppress_tokens or []), *banned})
            self.generation_config.suppress_tokens = suppressed
            self.generation_kwargs["suppress_tokens"] = suppressed

    @contextlib.contextmanager
    def _sampling(self, temperature: float | None = None, max_tokens: int | None = None):
        """Sample with ``temperature`` and at most ``max_tokens`` new tokens inside the block (None: the run's)."""
        if self.use_vllm:
            holder, length = self.vllm_generation, "max_completion_length"
        else:
            holder, length = self.generation_config, "max_new_tokens"
        overrides = {
            name: value
            for name, value in (("temperature", temperature), (length, max_tokens))
            if value is not None and value != getattr(holder, name)
        }
        previous = {name: getattr(holder, name) for name in overrides}
        for name, value in overrides.items():
            setattr(holder, name, value)
        try:
            yield
        finally:
            for name, value in previous.items():
                setattr(holder, name, value)

    # ------------------------------------------------------------------ prompt token budget
    def _prompt_token_budget(self) -> int:
        """Most tokens a prompt may have: ``max_prompt_tokens``, or less where the generation engine's limit leaves
        less room next to ``max_completion_length``.

        The engine's limit (``self._engine_token_limit``): the vLLM server's own ``max_model_len`` (asked once, by
        the main process), the colocated engine's ``max_model_len`` (``vllm_max_model_length`` or the model's), or
        for HF generate the model's maximum positions; None when the model states none. Computed once.
        """
        if not hasattr(self, "_prompt_budget"):
            if self.use_vllm and self.vllm_mode == "server":
                limit = [None]
                if self.accelerator.is_main_process:
                    limit = [self.vllm_generation.vllm_client.get_server_info()["model_config"]["max_model_len"]]
                broadcast_object_list(limit, from_process=0)
                limit = limit[0]
            elif self.use_vllm:
                limit = self.vllm_generation.llm.llm_engine.model_config.max_model_len
            else:
                limit = model_token_limit(self.accelerator.unwrap_model(self.model))
            self._engine_token_limit = None if limit is None else int(limit)
            self._prompt_budget = self.args.max_prompt_tokens
            if limit is not None:
                self._prompt_budget = min(self._prompt_budget, int(limit) - self.max_completion_length)
        return self._prompt_budget

    def _check_prompt_budget(self, budget: PromptBudget, specs: Iterable[TaskSpec], seeding_specs=()) -> None:
        """Refuse a setup where even the shortest prompts (the zero tasks') of ``specs`` are over ``budget``, the
        run's :meth:`_prompt_token_budget`; the error says which limit to raise.

        ``seeding_specs``: the specs the seeding phase proposes with besides the trained ones (it checks nothing
        itself).
        """
        over = budget.shortest_prompts_over(specs, self.prompt_format)
        seeding = budget.shortest_prompts_over(seeding_specs, self.prompt_format, roles=("propose",))
        for task_type, role, length in (*over, *seeding):
            ceiling, limit = self.args.max_prompt_tokens, self._engine_token_limit
            if budget.tokens == ceiling:
                why = f"max_prompt_tokens={ceiling}. Raise max_prompt_tokens."
            else:
                why = (
                    f"the generation engine takes {limit} tokens in all, which leaves {budget.tokens} for a prompt "
                    f"next to max_completion_length={self.max_completion_length}. Lower max_completion_length, or "
                    "raise the engine's limit (`trl vllm-serve --max_model_len`, `vllm_max_model_length`)."
                )
            raise ValueError(f"The shortest {task_type} {role} prompt has {length} tokens, more than {why}")
