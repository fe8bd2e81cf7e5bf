"""`AZRTrainer`: Absolute Zero self-play on TRL's `GRPOTrainer`.

The trainer overrides one method of GRPO, `_generate_and_score_completions`, and builds a step out of GRPO's own
pieces (tokenisation, `_generate_single_turn` for HF generate / vLLM server / vLLM colocate, `_calculate_rewards`,
log-probs, the loss). One step reads top-down as named phases:

    propose -> validate -> (solve, overlapping validation) -> Monte-Carlo learnability -> buffer -> rewards
    -> Task-Relative REINFORCE++ advantages -> GRPO's loss

Every collective (generation calls, gathers) happens in the same order with the same row counts on every rank.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from accelerate.utils import gather_object
from datasets import Dataset
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import GRPOTrainer

from .advantages import baseline_group_ids, task_relative_advantages
from .batch import build_training_batch
from .buffer import TaskBuffer
from .config import AZRConfig
from .engine_generation import EngineGenerationMixin
from .executor import make_executor
from .intrinsic import compute_intrinsic
from .prompt_budget import (
    check_prompt_budget,
    sample_references,
    sample_solve_tasks,
    share_too_long_marks,
    solve_prompt_fits,
)
from .prompt_format import model_card_section, save_prompt_format
from .rewards import make_azr_reward_funcs
from .step_metrics import StepRecord, step_metrics
from .tasks import TASK_TYPES, get_task_spec, validate_candidates
from .tasks.prompts import resolve_prompt_format
from .tasks.task import Task
from .vllm_server import VLLMServerUnavailableError, guard_vllm_server


BUFFER_FILE = "azr_buffer.json"


class AZRTrainer(EngineGenerationMixin, GRPOTrainer):
    """Trainer for Absolute Zero self-play (arXiv 2505.03335) on top of [`~trl.GRPOTrainer`].

    Args:
        model: a model id/path (``"default"`` resolves to the embedded SmolLM2-135M-Instruct) or a loaded model.
        reward_funcs: extra TRL reward functions, added after the AZR proposer and solver rewards. They receive the
            AZR row columns (``role``, ``task_type``, ``format_ok``, ``valid``, ``solve_rate``, ``correct``,
            ``verdict``) as keyword arguments and may return ``None`` for rows they don't score.
        args: an [`AZRConfig`]; ``max_steps`` is required.
        train_dataset: not needed: AZR generates its own tasks. A placeholder drives TRL's loop.
        executor: an executor to use instead of the one ``args`` describes (it is closed with the trainer).
        Other arguments are passed to [`~trl.GRPOTrainer`].
    """

    _tag_names = ["trl", "grpo", "azr", "absolute-zero", "self-play"]
    _name = "AZR"
    _paper = {
        "title": "Absolute Zero: Reinforced Self-play Reasoning with Zero Data",
        "id": "2505.03335",
        "citation": (
            "@inproceedings{zhao2025absolute,\n"
            "    title        = {{Absolute Zero: Reinforced Self-play Reasoning with Zero Data}},\n"
            "    author       = {Andrew Zhao and Yiran Wu and Yang Yue and Tong Wu and Quentin Xu and Matthieu Lin and "
            "Shenzhi Wang and Qingyun Wu and Zilong Zheng and Gao Huang},\n"
            "    year         = 2025,\n"
            "    eprint       = {arXiv:2505.03335},\n"
            "}"
        ),
    }

    def __init__(
        self,
        model,
        reward_funcs=None,
        args: AZRConfig | None = None,
        train_dataset: Dataset | None = None,
        processing_class=None,
        callbacks=None,
        optimizers=(None, None),
        peft_config=None,
        executor=None,
    ):
        if not isinstance(args, AZRConfig):
            raise TypeError("AZRTrainer needs an AZRConfig as `args` (max_steps is required).")
        if isinstance(model, str):
            from .models import resolve_model_path

            model = resolve_model_path(model)
        if train_dataset is None:
            # GRPO's loop pulls one placeholder row per generation round and rank; AZR ignores its content.
            rows = args.generation_batch_size // args.num_generations
            train_dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": ""}]] * rows})
        user_funcs = (
            [] if reward_funcs is None else list(reward_funcs if isinstance(reward_funcs, list) else [reward_funcs])
        )
        super().__init__(
            model=model,
            reward_funcs=make_azr_reward_funcs(args) + user_funcs,
            args=args,
            train_dataset=train_dataset,
            processing_class=processing_class,
            callbacks=callbacks,
            optimizers=optimizers,
            peft_config=peft_config,
        )
        # Server mode: wait out a server restart or a dropped connection, then push the weights again.
        self._vllm_server_retry = None
        if self.use_vllm and args.vllm_mode == "colocate":
            from .vllm_cpu import sync_weights_by_reload_on_cpu

            sync_weights_by_reload_on_cpu(self.vllm_generation)
        if self.use_vllm and args.vllm_mode == "server":
            self._vllm_server_retry = guard_vllm_server(
                self.vllm_generation, args.vllm_server_retry_seconds, args.vllm_server_retry_max_interval
            )
        self.prompt_format, self.require_think = resolve_prompt_format(
            args.prompt_format, args.require_think, self._tokenizer
        )
        if self.accelerator.is_main_process:
            # The format travels with the model: `azr-trl eval`/`seed` default to it.
            save_prompt_format(args.output_dir, self.prompt_format, self.require_think)

        self.executor = executor or make_executor(args.executor_config())
        # One background thread runs executor batches while the model generates (it never runs two at once).
        self._exec_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="azr-executor")
        self.specs = {t: _task_spec(args, t) for t in args.task_types}
        self._ban_token_ids()
        self.buffer = TaskBuffer(args.task_types, max_size=args.buffer_max_size, seed=args.seed)
        # Tasks this rank found too long for a prompt since the last step: (role, prompt task type, task).
        self._too_long_marks: list[tuple[str, str, Task]] = []
        check_prompt_budget(self)
        self._seed_buffer()
        # Seeding phase (Algorithm 1) before the first step, unless a checkpoint's buffer is loaded instead.
        self._seeding_pending = args.seeds_from_model
        if args.eval_benchmarks:
            from .evaluation import AZREvalCallback

            self.add_callback(
                AZREvalCallback(
                    self,
                    benchmarks=args.eval_benchmarks,
                    dataset=args.eval_benchmark_file,
                    num_items=args.eval_num_items,
                    eval_steps=args.eval_steps,
                    max_new_tokens=args.eval_max_new_tokens or args.max_completion_length,
                    prompt_format=self.prompt_format,
                    require_think=self.require_think,
                    executor_config=args.executor_config(),
                    seed=args.seed,
                )
            )
        self._optimize_time = 0.0
        self._generation_seconds = 0.0

    def create_model_card(self, *args, **kwargs):
        """TRL's model card, plus the prompt format the model was trained with."""
        super().create_model_card(*args, **kwargs)
        card = os.path.join(self.args.output_dir, "README.md")
        if self.is_world_process_zero() and os.path.isfile(card):
            with open(card, "a", encoding="utf-8") as f:
                f.write(model_card_section(self.prompt_format, self.require_think))

    # ------------------------------------------------------------------ set-up
    def _seed_buffer(self) -> None:
        """Seed with the zero triplet, or with the seed files (re-validated; bad rows reported by line number)."""
        if not self.args.seed_files:
            self.buffer.add_seeds()
            return
        added, errors = self.buffer.seed_from_files(self.args.seed_files, self.executor)
        for error in errors:
            _warn_main(self, f"Skipped seed row {error}")
        _warn_main(self, f"Seeded the task buffer with {added} tasks from {self.args.seed_files}.")

    # ------------------------------------------------------------------ draws
    def _rng(self, purpose: str) -> random.Random:
        # Derived from (seed, step, rank): ranks draw different prompts, and a resumed run draws what the original
        # would have, with no sampler state to save.
        return random.Random(f"{self.args.seed}-{self.state.global_step}-{self.accelerator.process_index}-{purpose}")

    # ------------------------------------------------------------------ one AZR step
    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        if not self.model.training:
            raise ValueError(
                "AZRTrainer has no evaluation dataset to generate on: keep eval_strategy='no' and evaluate with "
                "azr_trl.evaluation's callback or `azr-trl eval`."
            )
        start = time.perf_counter()
        if self._seeding_pending:
            self._seeding_phase()
        args, step = self.args, self.state.global_step
        timings: dict[str, float] = defaultdict(float)
        exec_stats = {"seconds": 0.0}
        programs_before = self.executor.programs_run

        # 1. Propose: one generation call for every task type.
        refs, propose_prompts, propose_types = self._build_propose_prompts()
        t0 = time.perf_counter()
        p_ids, p_cids, p_logps, p_texts = self._sample(propose_prompts)
        timings["generate_propose"] = time.perf_counter() - t0
        proposals = [
            self.specs[t].parse_proposal(text, r, require_think=self.require_think)
            for t, text, r in zip(propose_types, p_texts, refs, strict=True)
        ]

        # 2. Validate in the background while the solver generates on tasks already in the buffer.
        validation = self._submit(self._validate, proposals, propose_types, exec_stats)
        solve_tasks, solve_prompts, solve_types = self._build_solve_prompts()
        t0 = time.perf_counter()
        s_ids, s_cids, s_logps, s_texts = self._sample(solve_prompts)
        timings["generate_solve"] = time.perf_counter() - t0
        answers = [
            self.specs[t].parse_answer(text, require_think=self.require_think)
            for t, text in zip(solve_types, s_texts, strict=True)
        ]
        t0 = time.perf_counter()
        valid_tasks, verdicts = validation.result()
        timings["execute_wait"] += time.perf_counter() - t0
        verification = self._submit(self._verify, solve_types, solve_tasks, answers, exec_stats)

        # 3. Learnability: Monte-Carlo solver rollouts on every valid proposal (sampled, never trained on).
        t0 = time.perf_counter()
        solve_rates = self._monte_carlo_solve_rates(valid_tasks, exec_stats)
        timings["generate_mc"] = time.perf_counter() - t0 - exec_stats.get("mc_exec", 0.0)
        t0 = time.perf_counter()
        correct = verification.result()
        timings["execute_wait"] += time.perf_counter() - t0

        intrinsic = self._intrinsic(valid_tasks, refs)

        # 4. Buffer: every rank adds the same valid tasks in rank order.
        new_tasks = gather_object([t for t in valid_tasks if t is not None])
        self.buffer.add(new_tasks, step=step + 1)
        for key, value in share_too_long_marks(self).items():
            self._metrics["train"][key].append(value)

        # 5. Rows and rewards (propose rows first, then solve rows; the same count on every rank).
        records = [
            StepRecord(t, "propose", p.format_ok, v, ok is not None, rate, None, len(c))
            for t, p, v, ok, rate, c in zip(
                propose_types, proposals, verdicts, valid_tasks, solve_rates, p_cids, strict=True
            )
        ] + [
            StepRecord(t, "solve", a.format_ok, _answer_verdict(a, ok), None, None, ok, len(c))
            for t, a, ok, c in zip(solve_types, answers, correct, s_cids, strict=True)
        ]
        reward_rows = [
            {**record.reward_kwargs(), "intrinsic": extra}
            for record, extra in zip(records, intrinsic + [None] * len(solve_types), strict=True)
        ]
        prompts = propose_prompts + solve_prompts
        texts = p_texts + s_texts
        completions = [[{"role": "assistant", "content": x}] for x in texts] if self.prompt_format == "chat" else texts
        completion_ids = p_cids + s_cids
        rewards_per_func = self._calculate_rewards(reward_rows, prompts, completions, completion_ids)

        # 6. Task-Relative REINFORCE++ over the batch gathered from all ranks, then this rank's slice.
        all_records: list[StepRecord] = gather_object(records)
        self._check_ranks_in_sync(len(records))
        rewards = (rewards_per_func * self.reward_weights.to(rewards_per_func.device).unsqueeze(0)).nansum(dim=1)
        rewards[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
        groups = baseline_group_ids([r.task_type for r in all_records], [r.role for r in all_records], args.baseline)
        lengths = torch.tensor([r.length for r in all_records], dtype=torch.float)
        advantages = task_relative_advantages(
            rewards.cpu(), groups, lengths, weighting=args.advantage_weighting, scale=args.scale_advantages
        ).to(rewards.device)
        rank = self.accelerator.process_index
        local_advantages = advantages[rank * len(records) : (rank + 1) * len(records)]

        # 7. Tensors for GRPO's loss (padding, old/reference log-probs, vLLM importance sampling).
        t0 = time.perf_counter()
        sampling_logps = None if p_logps is None or s_logps is None else p_logps + s_logps
        batch = build_training_batch(self, p_ids + s_ids, completion_ids, sampling_logps)
        timings["logprob"] = time.perf_counter() - t0
        batch["advantages"] = local_advantages

        # 8. Metrics and the completions table.
        timings["execute"] = exec_stats["seconds"]
        exec_stats["programs"] = self.executor.programs_run - programs_before
        self._log_step(all_records, rewards, rewards_per_func, advantages, prompts, completions, timings, exec_stats)
        self._generation_seconds = time.perf_counter() - start
        return batch

    # ------------------------------------------------------------------ phases
    def _build_propose_prompts(self):
        rng = self._rng("propose")
        refs, prompts, types = [], [], []
        for task_type in self.args.task_types:
            k = 1 if task_type == "induction" else self.args.num_references
            for _ in range(self.args.propose_per_type):
                chosen = sample_references(self, task_type, k, rng)
                refs.append(chosen)
                prompts.append(self.specs[task_type].propose_prompt(chosen, self.prompt_format))
                types.append(task_type)
        return refs, prompts, types

    def _build_solve_prompts(self):
        tasks, prompts, types = [], [], []
        for task_type in self.args.task_types:
            for task in self._draw_solve_tasks(task_type):
                tasks.append(task)
                prompts.append(self.specs[task_type].solve_prompt(task, self.prompt_format))
                types.append(task_type)
        return tasks, prompts, types

    def _draw_solve_tasks(self, task_type: str) -> list:
        """This rank's slice of one draw of solver tasks for all ranks: distinct tasks while the buffer has them.

        Every rank holds the same buffer and seeds the draw with the same (seed, step, task type), so all ranks draw the
        same ``solve_per_type * world_size`` tasks and each takes its own slice (paper: 64 distinct tasks per type).
        """
        n, world = self.args.solve_per_type, self.accelerator.num_processes
        rng = random.Random(f"{self.args.seed}-{self.state.global_step}-solve-{task_type}")
        drawn = sample_solve_tasks(self, task_type, n * world, rng)  # tasks whose solve prompt fits
        rank = self.accelerator.process_index
        return drawn[rank * n : (rank + 1) * n]

    def _validate(self, proposals, types, stats):
        """One executor batch for every candidate of this rank: (valid task or None, verdict) per proposal.

        A proposal that did not parse gets its parse error (e.g. ``missing_answer``) as its verdict.
        """
        items = [
            (self.specs[t], p.candidate) for p, t in zip(proposals, types, strict=True) if p.candidate is not None
        ]
        t0 = time.perf_counter()
        outcomes = iter(validate_candidates(self.executor, items))
        stats["seconds"] += time.perf_counter() - t0
        valid, verdicts = [], []
        for proposal in proposals:
            task, verdict = (
                next(outcomes) if proposal.candidate is not None else (None, proposal.error or "parse_error")
            )
            valid.append(task)
            verdicts.append(str(verdict))
        return valid, verdicts

    def _verify(self, types, tasks, answers, stats) -> list[bool]:
        """Verify solver answers, one executor batch per task type."""
        t0 = time.perf_counter()
        correct = [False] * len(tasks)
        for task_type in self.args.task_types:
            idx = [i for i, t in enumerate(types) if t == task_type]
            if idx:
                results = self.specs[task_type].verify(
                    self.executor, [tasks[i] for i in idx], [answers[i] for i in idx]
                )
                for i, ok in zip(idx, results, strict=True):
                    correct[i] = bool(ok)
        stats["seconds"] += time.perf_counter() - t0
        return correct

    def _monte_carlo_solve_rates(self, valid_tasks, stats) -> list[float | None]:
        """Solve rate of each valid proposal over ``mc_rollouts`` sampled solver rollouts (None for invalid ones)."""
        n = self.args.mc_rollouts
        # A valid task whose solve prompt is too long gets no rollouts (no solve rate: trivial_task_reward).
        local = [i for i, t in enumerate(valid_tasks) if t is not None and solve_prompt_fits(self, t)]
        # Every rank must make the same generation calls with the same number of prompts (vLLM server mode gathers
        # them, ZeRO-3 gathers parameters): pad to the largest count with copies of a real prompt.
        most = max(gather_object([len(local)]))
        rates: list[float | None] = [None] * len(valid_tasks)
        if most == 0:
            return rates
        tasks = [valid_tasks[i] for i in local]
        filler = tasks[0] if tasks else sample_solve_tasks(self, self.args.task_types[0], 1, self._rng("mc"))[0]
        padded = tasks + [filler] * (most - len(tasks))
        prompts = [self.specs[t.task_type].solve_prompt(t, self.prompt_format) for t in padded for _ in range(n)]
        _, _, _, texts = self._sample(prompts, num_generations=n, temperature=self.args.mc_temperature)
        texts = texts[: len(tasks) * n]
        answers = [
            self.specs[t.task_type].parse_answer(x, require_think=False)
            for t, x in zip((t for t in tasks for _ in range(n)), texts, strict=True)
        ]
        t0 = time.perf_counter()
        types = [t.task_type for t in tasks for _ in range(n)]
        # Through the executor thread: the solver's verification may still be running there, and the executor
        # takes one batch at a time.
        repeated = [t for t in tasks for _ in range(n)]
        correct = self._submit(self._verify, types, repeated, answers, stats).result() if tasks else []
        stats["mc_exec"] = time.perf_counter() - t0
        for j, i in enumerate(local):
            rates[i] = sum(correct[j * n : (j + 1) * n]) / n
        return rates

    def _intrinsic(self, valid_tasks, refs) -> list[dict | None]:
        if not self.args.intrinsic_rewards:
            return [None] * len(valid_tasks)
        values = compute_intrinsic(valid_tasks, refs, self.args, buffer=self.buffer)
        return [v if t is not None else None for v, t in zip(values, valid_tasks, strict=True)]

    def _check_ranks_in_sync(self, local_rows: int) -> None:
        """Invariants of distributed AZR: equal row counts per rank, identical buffers (same gathered updates)."""
        if self.accelerator.num_processes == 1:
            return
        states = gather_object([(local_rows, self.buffer.fingerprint())])
        if len(set(states)) != 1:
            raise RuntimeError(
                f"AZR ranks diverged (rows, buffer fingerprint) per rank: {states}. Every rank must generate the same "
                "number of rows and apply the same buffer updates; please report this with your config."
            )

    def _submit(self, fn, *fn_args):
        return self._exec_thread.submit(fn, *fn_args)

    # ------------------------------------------------------------------ seeding phase (Algorithm 1)
    def _seeding_phase(self) -> None:
        """The starting model proposes the seed tasks on every rank before the first step (see azr_trl.seeding_phase)."""
        from .seeding_phase import run_seeding_phase

        self._seeding_pending = False
        run_seeding_phase(self, {t: self.specs.get(t) or _task_spec(self.args, t) for t in TASK_TYPES})

    # ------------------------------------------------------------------ logging
    def _log_step(self, records, rewards, rewards_per_func, advantages, prompts, completions, timings, exec_stats):
        metrics = self._metrics["train"]
        values = step_metrics(records, rewards.tolist(), self.args.task_types)
        programs = sum(gather_object([exec_stats["programs"]]))
        seconds = max(gather_object([exec_stats["seconds"]]))
        values["azr/executor/programs"] = programs
        values["azr/executor/programs_per_s"] = programs / seconds if seconds > 0 else 0.0
        for name, seconds_spent in timings.items():
            values[f"azr/time/{name}"] = seconds_spent
        values.update(self.buffer.stats())
        for key, value in values.items():
            metrics[key].append(float(value))
        for i, name in enumerate(self.reward_func_names):
            metrics[f"rewards/{name}/mean"].append(torch.nanmean(rewards_per_func[:, i]).item())
        metrics["reward"].append(torch.nanmean(rewards).item())
        # Completion-length metrics (what GRPO's `_generate` logs for its own rows).
        lengths = torch.tensor([r.length for r in records], dtype=torch.float)
        metrics["completions/mean_length"].append(lengths.mean().item())
        metrics["completions/max_length"].append(lengths.max().item())
        self.state.num_input_tokens_seen += int(lengths.sum().item())

        self._logs["prompt"].extend(gather_object(prompts))
        self._logs["completion"].extend(gather_object(completions))
        for i, name in enumerate(self.reward_func_names):
            self._logs["rewards"][name].extend(rewards_per_func[:, i].tolist())
        self._logs["advantages"].extend(advantages.tolist())
        for column in ("task_type", "role", "verdict"):
            self._logs["extra"][column].extend(getattr(r, column) for r in records)

    def training_step(self, model, inputs, num_items_in_batch):
        # Optimisation time = the micro-step's wall time minus the generation round that may have run inside it.
        t0 = time.perf_counter()
        self._generation_seconds = 0.0
        loss = super().training_step(model, inputs, num_items_in_batch)
        self._optimize_time += time.perf_counter() - t0 - self._generation_seconds
        if self._step % self.current_gradient_accumulation_steps == 0:
            self._metrics["train"]["azr/time/optimize"].append(self._optimize_time)
            self._optimize_time = 0.0
        return loss

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = os.path.join(
                self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            )
            self.buffer.save(os.path.join(folder, BUFFER_FILE))

    def _checkpoint_before_stop(self, error: Exception) -> VLLMServerUnavailableError:
        """Save a checkpoint of the last completed step before a run stops for good; the error to raise says where."""
        if self.accelerator.num_processes > 1:
            # The other processes wait for the main one inside the generation call: a collective save cannot run.
            return VLLMServerUnavailableError(f"{error} Resume from the last checkpoint written every save_steps.")
        self._save_checkpoint(self.model_wrapped, trial=None)
        folder = os.path.join(self._get_output_dir(trial=None), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        return VLLMServerUnavailableError(
            f"{error} Saved a checkpoint of the last completed step (step {self.state.global_step}) to {folder}; "
            f"resume with --resume_from_checkpoint {folder}."
        )

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is not None:
            self.load_buffer(checkpoint)

    def load_buffer(self, checkpoint: str) -> None:
        """Restore the task buffer saved in ``checkpoint`` (a run directory's ``checkpoint-N`` folder)."""
        path = os.path.join(checkpoint, BUFFER_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} is missing: {checkpoint} was not written by AZRTrainer, so its task buffer cannot be restored."
            )
        with open(path) as f:
            self.buffer.load_state_dict(json.load(f))
        self._seeding_pending = False  # the checkpoint's buffer already holds the seeds

    def close(self) -> None:
        """Stop the executor's processes and threads."""
        self._exec_thread.shutdown(wait=True)
        self.executor.close()


def _task_spec(args: AZRConfig, task_type: str):
    """The task spec of ``task_type`` with the config's parsing options."""
    options = {}
    if task_type == "induction":
        options = {
            "inputs_rule": args.induction_inputs,
            "reject_duplicate_inputs": args.reject_duplicate_inputs,
            "reject_message_leaks": args.reject_message_leaks,
        }
    return get_task_spec(
        task_type,
        num_inputs=args.induction_num_inputs,
        reject_multiple_functions=args.reject_multiple_functions,
        banned_modules=tuple(args.banned_modules),
        answer_extraction=args.answer_extraction,
        **options,
    )


def _answer_verdict(answer, correct: bool) -> str:
    if not answer.format_ok:
        return "format_error"
    return "correct" if correct else "wrong"


def _warn_main(trainer: AZRTrainer, message: str) -> None:
    if trainer.accelerator.is_main_process:
        from transformers.utils import logging

        logging.get_logger(__name__).warning(message)
