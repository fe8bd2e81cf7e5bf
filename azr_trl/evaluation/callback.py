"""Evaluation during training: a fixed code-reasoning subset scored every ``eval_steps`` with the live model.

```python
trainer = AZRTrainer(...)            # or a plain trl.GRPOTrainer
trainer.add_callback(AZREvalCallback(trainer, dataset="cruxeval.jsonl", num_items=64, eval_steps=10))
trainer.train()                      # logs eval/cruxeval_o/accuracy, eval/cruxeval_i/accuracy
```

Like the reference trainer's validation, answers are greedy and scored with the solver's own parser and verifier.
An `AZRTrainer` that generates with vLLM (server or colocated) evaluates through that engine, with the weights of
the step just taken. Otherwise the model generates with HF `generate`; under DeepSpeed ZeRO-3 its parameters are
gathered for that (`trl.models.unwrap_model_for_generation`: the whole model on each training GPU, which the memory
plan counts). Either way every rank generates its share of the items (the same number of calls on every rank: both
the server's gather and the ZeRO-3 gather are collectives), the verdicts are gathered, and the main process logs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
from collections.abc import Mapping, Sequence

from transformers import Trainer, TrainerCallback

from azr_trl.executor import ExecutorConfig
from azr_trl.tasks.prompts import resolve_prompt_format

from ..generation.generators import HFGenerator, SamplingSettings, TrainerEngineGenerator
from ..generation.trainer_mixin import EngineGenerationMixin
from .registry import get_benchmark
from .runner import EvalSettings, build_prompts
from .scoring import make_benchmark_executor, score_completions


logger = logging.getLogger(__name__)


class AZREvalCallback(TrainerCallback):
    """Evaluate a fixed subset of code-reasoning benchmarks every ``eval_steps`` optimizer steps.

    Args:
        trainer: the trainer whose model is evaluated. Needed in multi-process runs (its accelerator gathers ZeRO-3
            parameters and results); in a single process the callback may be passed to ``callbacks=`` without it.
        benchmarks: registered benchmark names (default: CRUXEval output and input prediction).
        dataset: a local file for every benchmark (a CRUXEval-format JSONL serves both), or a mapping from name to
            file; benchmarks without a file are loaded from the Hub.
        num_items: size of the fixed subset per benchmark (a seeded sample, the same at every evaluation);
            ``None`` uses every item.
        eval_steps: evaluate when ``global_step`` is a multiple of this; ``None`` uses ``args.eval_steps``.
        eval_on_start: also evaluate before the first step (step 0), for the baseline.
        max_new_tokens: completion length cap.
        batch_size: prompts per HF `generate` call (an `AZRTrainer` passes its ``generation_chunk_size``).
        prompt_format: ``auto``, ``chat`` or ``r1`` (use the format the run trains with).
        require_think: whether an answer needs a ``<think>`` block (None: r1 yes, chat no).
        executor_config: the sandbox that verifies answers (an `AZRTrainer` passes its own: backend, timeout,
            workers, memory limit, banned modules); None: the executor's defaults.
        seed: picks the subset.
    """

    def __init__(
        self,
        trainer: Trainer | None = None,
        benchmarks: Sequence[str] = ("cruxeval_o", "cruxeval_i"),
        dataset: str | Mapping[str, str] | None = None,
        num_items: int | None = 64,
        eval_steps: int | None = None,
        eval_on_start: bool = False,
        max_new_tokens: int = 512,
        batch_size: int = 8,
        prompt_format: str = "auto",
        require_think: bool | None = None,
        executor_config: ExecutorConfig | None = None,
        seed: int = 0,
    ):
        if eval_steps is not None and eval_steps < 1:
            raise ValueError(f"eval_steps must be >= 1, got {eval_steps}")
        self.trainer = trainer
        self.eval_steps = eval_steps
        self.eval_on_start = eval_on_start
        self.batch_size = batch_size
        self.settings = EvalSettings(
            prompt_format=prompt_format,
            require_think=require_think,
            sampling=SamplingSettings(max_new_tokens=max_new_tokens),
            executor=executor_config or ExecutorConfig(),
        )
        files = dict(dataset) if isinstance(dataset, Mapping) else dict.fromkeys(benchmarks, dataset)
        # Loaded now, so that a bad file fails before training starts rather than at the first evaluation.
        self.items: dict[str, list] = {}
        for name in benchmarks:
            items = get_benchmark(name).load(files.get(name))
            if num_items is not None and num_items < len(items):
                keep = sorted(random.Random(seed).sample(range(len(items)), num_items))
                items = [items[i] for i in keep]
            if not items:
                raise ValueError(f"AZREvalCallback: benchmark {name!r} has no items")
            self.items[name] = items
        self._executor = None
        # {benchmark: {item index: correct}} of the latest evaluation, gathered from every rank.
        self.last_results: dict[str, dict[int, bool]] = {}

    @classmethod
    def from_config(cls, trainer: Trainer, args, prompt_format: str, require_think: bool | None) -> AZREvalCallback:
        """The callback that an `AZRConfig`'s ``eval_*`` fields describe, for ``trainer`` and the prompt format it
        trains with (what `AZRTrainer` adds when ``eval_benchmarks`` is set)."""
        return cls(
            trainer,
            benchmarks=args.eval_benchmarks,
            dataset=args.eval_benchmark_file,
            num_items=args.eval_num_items,
            eval_steps=args.eval_steps,
            max_new_tokens=args.eval_max_new_tokens or args.max_completion_length,
            batch_size=args.generation_chunk_size,  # the HF batch bound the memory plan counts
            prompt_format=prompt_format,
            require_think=require_think,
            executor_config=args.executor_config(),
            seed=args.seed,
        )

    # ----- TrainerCallback hooks -----
    def on_train_begin(self, args, state, control, **kwargs):
        if self.eval_steps is None:
            self.eval_steps = getattr(args, "eval_steps", None)
            if not self.eval_steps:
                raise ValueError("AZREvalCallback needs eval_steps (or args.eval_steps) to know when to evaluate")
            # TrainingArguments allows a fraction of the run; turn it into steps.
            if self.eval_steps < 1:
                self.eval_steps = max(1, math.ceil(self.eval_steps * state.max_steps))
        self.eval_steps = int(self.eval_steps)
        if self.eval_on_start:
            self._evaluate(args, state, control, **kwargs)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step > 0 and state.global_step % self.eval_steps == 0:
            self._evaluate(args, state, control, **kwargs)

    def on_train_end(self, args, state, control, **kwargs):
        self.close()

    def close(self) -> None:
        """Stop the executor's worker processes (also done at the end of training)."""
        if self._executor is not None:
            self._executor.close()
            self._executor = None

    # ----- evaluation -----
    def _evaluate(self, args, state, control, model=None, processing_class=None, **kwargs) -> dict[str, float]:
        trainer = self.trainer
        accelerator = getattr(trainer, "accelerator", None)
        tokenizer = getattr(trainer, "processing_class", None) or processing_class
        if tokenizer is None:
            raise ValueError("AZREvalCallback needs the tokenizer: pass the trainer, or train with processing_class")
        world = accelerator.num_processes if accelerator is not None else 1
        if accelerator is None and _distributed_world_size() > 1:
            raise ValueError("AZREvalCallback in a multi-process run needs the trainer: AZREvalCallback(trainer, ...)")
        rank = accelerator.process_index if accelerator is not None else 0
        executor = self._scoring_executor()
        fmt, require_think = resolve_prompt_format(self.settings.prompt_format, self.settings.require_think, tokenizer)
        outcomes: list[tuple[str, int, bool, bool]] = []  # (benchmark, item index, correct, format_ok)
        # The tokens training never samples stay out of the evaluation too.
        banned = tuple(getattr(args, "banned_token_ids", None) or ())
        sampling = dataclasses.replace(self.settings.sampling, banned_token_ids=banned)
        with self._generator(model, tokenizer) as generator:
            for name, all_items in self.items.items():
                indices = _rank_share(len(all_items), rank, world)
                items = [all_items[i % len(all_items)] for i in indices]
                benchmark = get_benchmark(name)
                prompts = build_prompts(benchmark, items, fmt)
                completions = generator.generate(prompts, sampling, progress=False)
                samples = score_completions(
                    benchmark, items, completions, executor=executor, require_think=require_think
                )
                for i, records in zip(indices, samples, strict=True):
                    if i < len(all_items):  # not a padding repeat
                        outcomes.append((name, i, records[0]["correct"], records[0].get("format_ok", True)))

        if accelerator is not None and world > 1:
            from accelerate.utils import gather_object

            outcomes = gather_object(outcomes)
        metrics = _metrics(list(self.items), outcomes)
        self.last_results = {name: {} for name in self.items}
        for name, i, correct, _ in outcomes:
            self.last_results[name][i] = bool(correct)
        is_main = accelerator.is_main_process if accelerator is not None else state.is_world_process_zero
        if is_main:
            if trainer is not None:
                # The base Trainer.log: GRPOTrainer.log would fold (and reset) its running training metrics into this
                # entry; evaluation gets an entry of its own. Logging resets `should_log`, which the step's own
                # training log (due right after this hook) still needs.
                should_log = control.should_log
                Trainer.log(trainer, dict(metrics))
                control.should_log = should_log
            else:
                state.log_history.append({**metrics, "step": state.global_step})
            logger.info("step %d: %s", state.global_step, metrics)
        return metrics

    def _scoring_executor(self):
        """The sandbox that verifies answers, built at the first evaluation from ``executor_config`` (the run's
        memory limit and banned modules included) and kept until :meth:`close`."""
        if self._executor is None:
            self._executor = make_benchmark_executor(self.settings.executor)
        return self._executor

    @contextlib.contextmanager
    def _generator(self, model, tokenizer):
        """What generates the answers: the trainer's vLLM engine when it has one, else HF `generate` on the live
        model (in eval mode for the block)."""
        trainer = self.trainer
        if getattr(trainer, "use_vllm", False) and isinstance(trainer, EngineGenerationMixin):
            yield TrainerEngineGenerator(trainer)
            return
        with self._generation_model(model) as live_model:
            was_training = live_model.training
            live_model.eval()
            try:
                yield HFGenerator(live_model, tokenizer, batch_size=self.batch_size)
            finally:
                if was_training:
                    live_model.train()

    @contextlib.contextmanager
    def _generation_model(self, model):
        trainer = self.trainer
        if trainer is None:
            if model is None:
                raise ValueError("AZREvalCallback got no model: pass the trainer, or use it inside Trainer.train()")
            yield model
            return
        from trl.models import unwrap_model_for_generation

        # Gathers ZeRO-3 shards (a collective: all ranks enter) and pauses gradient checkpointing.
        with unwrap_model_for_generation(
            trainer.model_wrapped,
            trainer.accelerator,
            gather_deepspeed3_params=getattr(trainer.args, "ds3_gather_for_generation", True),
            gradient_checkpointing_kwargs=getattr(trainer.args, "gradient_checkpointing_kwargs", None),
        ) as unwrapped:
            yield unwrapped


def _rank_share(n: int, rank: int, world: int) -> list[int]:
    """Item indices for ``rank``: round-robin over ``ceil(n / world) * world`` slots, so every rank gets the same
    count (indices >= n are padding repeats). Equal counts mean the same number of generate calls on every rank,
    which ZeRO-3's gathered generation needs to stay in step."""
    per_rank = math.ceil(n / world)
    return list(range(rank, per_rank * world, world))


def _metrics(names: Sequence[str], outcomes: Sequence[tuple[str, int, bool, bool]]) -> dict[str, float]:
    seen: dict[tuple[str, int], tuple[bool, bool]] = {}
    for name, i, correct, format_ok in outcomes:
        seen.setdefault((name, i), (bool(correct), bool(format_ok)))
    metrics: dict[str, float] = {}
    for name in names:
        rows = [v for (n, _), v in seen.items() if n == name]
        if rows:
            metrics[f"eval/{name}/accuracy"] = sum(c for c, _ in rows) / len(rows)
            metrics[f"eval/{name}/format_error_rate"] = sum(not f for _, f in rows) / len(rows)
    return metrics


def _distributed_world_size() -> int:
    try:
        import torch.distributed as dist
    except ImportError:
        return 1
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
