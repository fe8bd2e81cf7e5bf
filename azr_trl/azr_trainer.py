"""`AZRTrainer`: Absolute Zero self-play on TRL's `GRPOTrainer`.

The trainer overrides one method of GRPO, `_generate_and_score_completions`, and builds a step out of GRPO's own
pieces (tokenisation, `_generate_single_turn` for HF generate / vLLM server / vLLM colocate, `_calculate_rewards`,
log-probs, the loss). One step reads top-down as named phases:

    propose -> validate -> (solve, overlapping validation) -> Monte-Carlo learnability -> buffer -> rewards
    -> Task-Relative REINFORCE++ advantages -> GRPO's loss

Every collective (generation calls, gathers) happens in the same order with the same row counts on every rank.
"""

from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from accelerate.utils import gather_object
from datasets import Dataset
from transformers import Trainer
from trl import GRPOTrainer

from .azr_config import AZRConfig, task_spec
from .executor import make_executor
from .generation.trainer_mixin import EngineGenerationMixin
from .generation.vllm_cpu import colocated_engine_settings_on_cpu
from .run_outputs.checkpoints import CheckpointMixin
from .run_outputs.prompt_format import model_card_section, save_prompt_format
from .seeding.generation import SEED_TRIPLET_TYPES
from .seeding.phase import SeedingEngine, accelerator_ranks, run_seeding_phase
from .selfplay.advantages import baseline_group_ids, task_relative_advantages
from .selfplay.batch import build_training_batch, groups_by_length, split_micro_batches
from .selfplay.buffer import TaskBuffer
from .selfplay.draws import prompt_budget, share_too_long_marks, solve_prompt_fits
from .selfplay.intrinsic import compute_intrinsic
from .selfplay.rewards import make_azr_reward_funcs
from .selfplay.rollouts import Rollouts, propose_prompts, solve_prompts
from .selfplay.step_metrics import PhaseTimer, StepRecord, log_step, propose_records, solve_records
from .tasks import TASK_TYPES, TaskFamily, validate_candidates
from .tasks.prompts import resolve_prompt_format
from .tasks.task import Task


class AZRTrainer(CheckpointMixin, EngineGenerationMixin, GRPOTrainer):
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
            from .offline_models import resolve_model_path

            model = resolve_model_path(model)
        if train_dataset is None:
            # GRPO's loop pulls one placeholder row per generation round and rank; AZR ignores its content.
            rows = args.generation_batch_size // args.num_generations
            train_dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": ""}]] * rows})
        user_funcs = (
            [] if reward_funcs is None else list(reward_funcs if isinstance(reward_funcs, list) else [reward_funcs])
        )
        with colocated_engine_settings_on_cpu(args):
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
        self._set_up_engine()
        self.prompt_format, self.require_think = resolve_prompt_format(
            args.prompt_format, args.require_think, self._tokenizer
        )
        if self.accelerator.is_main_process:
            # The format travels with the model: `azr-trl eval`/`seed` default to it.
            save_prompt_format(args.output_dir, self.prompt_format, self.require_think)

        self.executor = executor or make_executor(args.executor_config())
        # One background thread runs executor batches while the model generates (it never runs two at once).
        self._exec_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="azr-executor")
        self.specs = {t: task_spec(args, t) for t in args.task_types}
        self._ban_token_ids()
        self.buffer = TaskBuffer(args.task_types, max_size=args.buffer_max_size, seed=args.seed)
        # Tasks this rank found too long for a prompt since the last step: (role, prompt task type, task).
        self._too_long_marks: list[tuple[str, str, Task]] = []
        # The seeding phase proposes both triplet types, trained or not: their prompts are checked here too.
        seeding_only = [t for t in SEED_TRIPLET_TYPES if args.seeds_from_model and t not in self.specs]
        self._check_prompt_budget(prompt_budget(self), self.specs.values(), [task_spec(args, t) for t in seeding_only])
        self._seed_buffer()
        # Seeding phase (Algorithm 1) before the first step, unless a checkpoint's buffer is loaded instead.
        self._seeding_pending = args.seeds_from_model
        if args.eval_benchmarks:
            from .evaluation import AZREvalCallback

            self.add_callback(AZREvalCallback.from_config(self, args, self.prompt_format, self.require_think))
        # Wall time of this generation round's phases, of its executor batches, and of the micro-steps since the last
        # optimizer step (see training_step).
        self._phase_time, self._executor_time, self._micro_step_time = PhaseTimer(), PhaseTimer(), PhaseTimer()

    def create_model_card(self, *args, **kwargs):
        """TRL's model card, plus the prompt format the model was trained with."""
        super().create_model_card(*args, **kwargs)
        card = os.path.join(self.args.output_dir, "README.md")
        if self.is_world_process_zero() and os.path.isfile(card):
            with open(card, "a", encoding="utf-8") as f:
                f.write(model_card_section(self.prompt_format, self.require_think))

    # ------------------------------------------------------------------ set-up
    def _seed_buffer(self) -> None:
        """Seed with the task families' own seeds plus the zero tasks, or plus the seed files (re-validated; bad rows
        reported by line number)."""
        family_seeds = [
            task
            for spec in self.specs.values()
            if isinstance(spec, TaskFamily)
            for task in spec.with_outputs(self.executor, spec.seed_tasks(seed=self.args.seed))
        ]
        if not self.args.seed_files:
            self.buffer.add_seeds(family_seeds)
            return
        added, errors = self.buffer.seed_from_files(self.args.seed_files, self.executor, extra_seeds=family_seeds)
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
        with self._micro_step_time("generation"):  # not optimisation time (see training_step)
            if self._seeding_pending:
                self._seeding_phase()
            self._phase_time, self._executor_time = PhaseTimer(), PhaseTimer()
            programs_before = self.executor.programs_run
            # 1. Propose: one generation call for every task type; the executor validates in the background...
            refs, proposed, proposals = self._propose()
            validation = self._submit(self._validate, proposals, proposed.task_types)
            # 2. ...while the solver generates on tasks already in the buffer.
            solve_tasks, solved, answers = self._solve()
            valid_tasks, verdicts = self._wait(validation)
            verification = self._submit(self._verify, solved.task_types, solve_tasks, answers)
            # 3. Learnability: Monte-Carlo solver rollouts on every valid proposal (sampled, never trained on).
            solve_rates = self._monte_carlo_solve_rates(valid_tasks, [p.format_ok for p in proposals])
            correct = self._wait(verification)
            intrinsic = self._intrinsic(valid_tasks, refs)
            # 4. Buffer: every rank adds the same valid tasks in rank order.
            self._update_buffer(valid_tasks)
            # 5. Rows and rewards (propose rows first, then solve rows; the same count on every rank).
            records = propose_records(proposed, proposals, verdicts, valid_tasks, solve_rates)
            records += solve_records(solved, answers, correct)
            rollouts = proposed + solved
            rewards_per_func, rewards = self._rewards(records, intrinsic, rollouts)
            # 6. Task-Relative REINFORCE++ over the rows gathered from all ranks.
            all_records, advantages = self._advantages(records, rewards)
            # 7. Tensors for GRPO's loss (padding, old/reference log-probs, vLLM importance sampling).
            batch = self._training_batch(rollouts, advantages)
            # 8. Metrics and the completions table.
            timings = {**self._phase_time.seconds, "execute": self._executor_time.seconds.get("execute", 0.0)}
            programs = self.executor.programs_run - programs_before
            log_step(
                self,
                all_records,
                rewards,
                rewards_per_func,
                advantages,
                rollouts,
                timings,
                programs,
                task_types=self.args.task_types,
                buffer_stats=self.buffer.stats(),
                prompt_format=self.prompt_format,
            )
        return batch

    # ------------------------------------------------------------------ phases
    def _propose(self) -> tuple[list[list[Task]], Rollouts, list]:
        """Proposer rollouts for every task type in one generation call: (references, rollouts, parsed proposals)."""
        refs, prompts, types = propose_prompts(self, self._rng("propose"))
        with self._phase_time("generate_propose"):
            proposed = self._rollouts(prompts, types)
        proposals = [
            self.specs[t].parse_proposal(text, r, require_think=self.require_think)
            for t, text, r in zip(types, proposed.texts, refs, strict=True)
        ]
        return refs, proposed, proposals

    def _solve(self) -> tuple[list[Task], Rollouts, list]:
        """Solver rollouts on tasks drawn from the buffer: (tasks, rollouts, parsed answers)."""
        tasks, prompts, types = solve_prompts(self)
        with self._phase_time("generate_solve"):
            solved = self._rollouts(prompts, types)
        answers = [
            self.specs[t].parse_answer(text, require_think=self.require_think)
            for t, text in zip(types, solved.texts, strict=True)
        ]
        return tasks, solved, answers

    def _rollouts(self, prompts: list, task_types: list[str]) -> Rollouts:
        """One generation call on ``prompts`` (one completion each); ``task_types`` says what each prompt is for."""
        prompt_ids, completion_ids, sampling_logps, texts = self._sample(prompts)
        return Rollouts(prompts, task_types, prompt_ids, completion_ids, sampling_logps, texts)

    def _validate(self, proposals, types):
        """One executor batch for every candidate of this rank: (valid task or None, verdict) per proposal.

        A proposal that did not parse gets its parse error (e.g. ``missing_answer``) as its verdict.
        """
        items = [
            (self.specs[t], p.candidate) for p, t in zip(proposals, types, strict=True) if p.candidate is not None
        ]
        with self._executor_time("execute"):
            outcomes = iter(validate_candidates(self.executor, items))
        valid, verdicts = [], []
        for proposal in proposals:
            task, verdict = (
                next(outcomes) if proposal.candidate is not None else (None, proposal.error or "parse_error")
            )
            valid.append(task)
            verdicts.append(str(verdict))
        return valid, verdicts

    def _verify(self, types, tasks, answers) -> list[bool]:
        """Verify solver answers, one executor batch per task type."""
        correct = [False] * len(tasks)
        with self._executor_time("execute"):
            for task_type in self.args.task_types:
                idx = [i for i, t in enumerate(types) if t == task_type]
                if idx:
                    results = self.specs[task_type].verify(
                        self.executor, [tasks[i] for i in idx], [answers[i] for i in idx]
                    )
                    for i, ok in zip(idx, results, strict=True):
                        correct[i] = bool(ok)
        return correct

    def _monte_carlo_solve_rates(self, valid_tasks, format_ok: list[bool] | None = None) -> list[float | None]:
        """Solve rate of each valid proposal over ``mc_rollouts`` sampled solver rollouts (None for invalid ones).

        ``format_ok``: per proposal; a valid task of a badly formatted proposal (``keep_badly_formatted_tasks``) gets
        no rollouts either, since its proposer gets the format reward whatever its solve rate.
        """
        n = self.args.mc_rollouts
        rates: list[float | None] = [None] * len(valid_tasks)
        well_formed = format_ok if format_ok is not None else [True] * len(valid_tasks)
        with self._phase_time("generate_mc"):  # the wait for the executor's verdicts is not generation time
            # A valid task whose solve prompt is too long gets no rollouts (no solve rate: trivial_task_reward).
            local = [
                i
                for i, (t, ok) in enumerate(zip(valid_tasks, well_formed, strict=True))
                if t is not None and ok and solve_prompt_fits(self, t)
            ]
            # Every rank makes the same generation call (vLLM server mode gathers every rank's prompts and hands back
            # equal slices; ZeRO-3 gathers parameters): ranks with fewer tasks pad to the largest count with padding
            # rows, which the engine answers with at most one token.
            counts = gather_object([len(local)])
            most = max(counts)
            self._metrics["train"]["azr/monte_carlo/padded_tasks"].append(float(sum(most - c for c in counts)))
            if most == 0:
                return rates
            tasks = [valid_tasks[i] for i in local]
            prompts = [self.specs[t.task_type].solve_prompt(t, self.prompt_format) for t in tasks for _ in range(n)]
            padding = most - len(tasks)
            texts = self._sample(prompts, num_generations=n, temperature=self.args.mc_temperature, padding=padding)[3]
            repeated = [t for t in tasks for _ in range(n)]
            answers = [
                self.specs[t.task_type].parse_answer(x, require_think=False, monte_carlo=True)
                for t, x in zip(repeated, texts, strict=True)
            ]
        # Through the executor thread: the solver's verification may still be running there, and the executor takes
        # one batch at a time.
        types = [t.task_type for t in repeated]
        correct = self._wait(self._submit(self._verify, types, repeated, answers)) if tasks else []
        for j, i in enumerate(local):
            rates[i] = sum(correct[j * n : (j + 1) * n]) / n
        return rates

    def _intrinsic(self, valid_tasks, refs) -> list[dict | None]:
        if not self.args.intrinsic_rewards:
            return [None] * len(valid_tasks)
        values = compute_intrinsic(valid_tasks, refs, self.args, buffer=self.buffer)
        return [v if t is not None else None for v, t in zip(values, valid_tasks, strict=True)]

    def _update_buffer(self, valid_tasks) -> None:
        """Every rank adds the valid tasks of all ranks, in rank order; then the too-long prompt counts are shared."""
        self.buffer.add(gather_object([t for t in valid_tasks if t is not None]), step=self.state.global_step + 1)
        for key, value in share_too_long_marks(self).items():
            self._metrics["train"][key].append(value)

    def _rewards(self, records, intrinsic, rollouts: Rollouts) -> tuple[torch.Tensor, torch.Tensor]:
        """The reward functions on this rank's rows, gathered from all ranks: (rewards per function, weighted sum).

        Each row passes its AZR columns (and the proposer rows their intrinsic terms) to the reward functions.
        """
        extras = intrinsic + [None] * (len(records) - len(intrinsic))  # solve rows have no intrinsic terms
        rows = [{**record.reward_kwargs(), "intrinsic": extra} for record, extra in zip(records, extras, strict=True)]
        completions = rollouts.completions(self.prompt_format)
        rewards_per_func = self._calculate_rewards(rows, rollouts.prompts, completions, rollouts.completion_ids)
        rewards = (rewards_per_func * self.reward_weights.to(rewards_per_func.device).unsqueeze(0)).nansum(dim=1)
        rewards[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
        return rewards_per_func, rewards

    def _advantages(self, records, rewards) -> tuple[list[StepRecord], torch.Tensor]:
        """Task-Relative REINFORCE++ over the rows of all ranks: (the records of all ranks, their advantages)."""
        all_records: list[StepRecord] = gather_object(records)
        self._check_ranks_in_sync(len(records))
        groups = baseline_group_ids(
            [r.task_type for r in all_records], [r.role for r in all_records], self.args.baseline
        )
        lengths = torch.tensor([r.length for r in all_records], dtype=torch.float)
        advantages = task_relative_advantages(
            rewards.cpu(), groups, lengths, weighting=self.args.advantage_weighting, scale=self.args.scale_advantages
        )
        return all_records, advantages.to(rewards.device)

    def _training_batch(self, rollouts: Rollouts, advantages: torch.Tensor) -> dict[str, Any]:
        """GRPO's loss inputs for this rank's rows, with their slice of the advantages of all ranks."""
        rows, rank = len(rollouts.texts), self.accelerator.process_index
        with self._phase_time("logprob"):
            batch = build_training_batch(self, rollouts.prompt_ids, rollouts.completion_ids, rollouts.sampling_logps)
        batch["advantages"] = advantages[rank * rows : (rank + 1) * rows]
        return batch

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

    def _wait(self, job):
        """The result of an executor job; the wait counts as ``execute_wait``."""
        with self._phase_time("execute_wait"):
            return job.result()

    # ------------------------------------------------------------------ seeding phase (Algorithm 1)
    def _seeding_phase(self) -> None:
        """The starting model proposes the seed tasks on every rank before the first step (see azr_trl.seeding.phase)."""
        engine = SeedingEngine(
            generate=lambda prompts: self._sample(prompts)[3],
            executor=self.executor,
            prompt_budget=prompt_budget(self),
            fmt=self.prompt_format,
            require_think=self.require_think,
            ranks=accelerator_ranks(self.accelerator),
            # transformers' log, not GRPO's: GRPO's would also flush the first step's metrics and completions table.
            log_metrics=lambda logs: Trainer.log(self, logs),
        )
        specs = {t: self.specs.get(t) or task_spec(self.args, t) for t in TASK_TYPES}
        self.buffer.add_seeds(run_seeding_phase(self.args, specs, engine))
        # Only now: a run stopped during seeding writes no checkpoint, and its restart seeds on from the seed files.
        self._seeding_pending = False

    # ------------------------------------------------------------------ micro-batches
    def _prepare_inputs(self, generation_batch: dict[str, Any]) -> dict[str, Any]:
        """GRPO's buffering of one generation round into micro-batches, each trimmed of the padding no row of it
        needs, with rows of similar length grouped when that leaves the gradient unchanged (see
        `split_micro_batches`)."""
        if not self.model.training:
            return super()._prepare_inputs(generation_batch)
        micro_batches = self.args.steps_per_generation
        if self._step % (micro_batches * self.num_iterations) == 0 or self._buffered_inputs is None:
            batch = self._generate_and_score_completions(generation_batch)
            self._buffered_inputs = split_micro_batches(batch, micro_batches, groups_by_length(self.args))
        return self._buffered_inputs[self._step % micro_batches]

    # ------------------------------------------------------------------ timing
    def training_step(self, model, inputs, num_items_in_batch):
        # Optimisation time = the micro-steps' wall time minus the generation rounds that ran inside them.
        with self._micro_step_time("micro_steps"):
            loss = super().training_step(model, inputs, num_items_in_batch)
        if self._step % self.current_gradient_accumulation_steps == 0:
            spent = self._micro_step_time.seconds
            self._metrics["train"]["azr/time/optimize"].append(spent.pop("micro_steps") - spent.pop("generation", 0.0))
        return loss

    def close(self) -> None:
        """Stop the executor's processes and threads."""
        self._exec_thread.shutdown(wait=True)
        self.executor.close()


def _warn_main(trainer: AZRTrainer, message: str) -> None:
    if trainer.accelerator.is_main_process:
        from transformers.utils import logging

        logging.get_logger(__name__).warning(message)
