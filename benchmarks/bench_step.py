"""One whole AZR step vs one plain GRPOTrainer step on the same model, at equal generated sequences and tokens.

Everything AZR adds to a GRPO step — prompts from the buffer, validating proposals in the executor, Monte-Carlo solver
rollouts on every valid proposal, verifying every answer, the buffer, TRR++ and its metrics — should cost little next to
generation and optimisation. The 135M model cannot write a valid proposal on its own, so this script forces the
completions: a logits processor makes every completion spell a chosen text, token by token, through the real
generation loop. Every proposal is valid (a new program and input for deduction and abduction, distinct inputs and a
message for induction) and every answer is well formed and right (the task's output, its input, its program), so each
measured step validates proposals, samples and verifies the Monte-Carlo rollouts, and verifies the solver's answers in
the executor (abduction and induction answers run; deduction answers are compared as values). Every completion is padded
to the same number of tokens.

1. trains the default model (SmolLM2-135M-Instruct) with AZRTrainer for ``--steps`` steps and records, for the last
   step, its wall time, its time split (``azr/time/*``) and every prompt it generated from (propose, solve and
   Monte-Carlo rollouts);
2. trains the same model with GRPOTrainer on exactly those prompts (as ``num_generations=2`` groups, so the same
   number of sequences, Monte-Carlo ones included), every completion forced to the same length (``min_new_tokens``),
   and records its last step's wall time;
3. prints both, the ratio (target on CPU: at most 1.15) and AZR's time split.

GRPO trains on every sequence it generates, while AZR trains only on its propose and solve rows (its Monte-Carlo
rollouts are generated and scored, never trained on): at equal generation, GRPO's step also optimises more rows. So the
script prints AZR's own additions separately: its step time minus generation, execution waited on, log-probs and
optimisation.

Usage: ``python benchmarks/bench_step.py [--steps 2] [--tokens 72] [--per-type 1] [--mc 2]``
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import tempfile
import time


os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

INDUCTION_INPUTS = 4
_ANSWER = "<think>\nPlan.\n</think>\n<answer>\n{body}\n</answer>\n"
_PROGRAM = """def f(x):
    t = {b}
    for i in range(x % 5):
        t += i * {a}
    return t"""


def _common(tokens: int) -> dict:
    return dict(
        max_completion_length=tokens,
        # Same length for every completion in both trainers: the comparison is at equal generated tokens.
        generation_kwargs={"min_new_tokens": tokens},
        learning_rate=1e-6,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        seed=0,
        disable_tqdm=True,
    )


def _per_device(rows: int) -> int:
    """Micro-batches of 2 rows (1 if the rows are odd): the long propose prompts make bigger ones need several GB."""
    return 2 if rows % 2 == 0 else 1


class ForcedCompletions:
    """A logits processor that makes row ``b`` of the next ``generate`` call spell ``targets[b]`` token by token, then
    the filler token until ``max_new_tokens``: the real generation loop runs, only the choice of token is fixed."""

    def __init__(self, filler: int):
        self.filler = filler
        self.targets = None  # LongTensor (rows, tokens), set before each generate call
        self.start = None

    def set(self, targets) -> None:
        self.targets, self.start = targets, None

    def __call__(self, input_ids, scores):
        if self.targets is None:
            return scores
        if self.start is None:
            self.start = input_ids.shape[1]
        step = min(input_ids.shape[1] - self.start, self.targets.shape[1] - 1)
        forced = scores.new_full(scores.shape, float("-inf"))
        forced.scatter_(1, self.targets[:, step : step + 1].to(scores.device), 0.0)
        return forced


def _key(prompt) -> str:
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)


def run_azr(model_path: str, args) -> tuple[dict, dict, dict]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessorList

    from azr_trl import AZRConfig, AZRTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    forcer = ForcedCompletions(filler=tokenizer.encode("\n", add_special_tokens=False)[0])

    class ForcedAZRTrainer(AZRTrainer):
        """Records the prompts of each step (Monte-Carlo repeats included) and forces a valid completion for each."""

        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.recorded, self.made_by, self.proposals = [], {}, 0
            for spec in self.specs.values():
                spec.propose_prompt = self._remember(spec.propose_prompt, "propose", spec)
                spec.solve_prompt = self._remember(spec.solve_prompt, "solve", spec)

        def _remember(self, build, role, spec):
            @functools.wraps(build)
            def wrapper(what, fmt):
                prompt = build(what, fmt)
                self.made_by[_key(prompt)] = (role, spec.task_type, what)
                return prompt

            return wrapper

        def _completion(self, prompt) -> str:
            role, task_type, what = self.made_by[_key(prompt)]
            if role == "solve":
                body = {"deduction": f"```output\n{what.output}\n```", "abduction": f"```input\n{what.input}\n```"}
                return _ANSWER.format(body=body.get(task_type) or f"```python\n{what.program}```")
            self.proposals += 1
            k = self.state.global_step * 1000 + self.proposals  # every proposal is a new task
            if task_type == "induction":  # inputs for the reference program (every program here takes one integer)
                inputs = "\n".join(f"```input\n{k % 90 + i}\n```" for i in range(INDUCTION_INPUTS))
                return _ANSWER.format(body=f"{inputs}\n```message\nSums multiples.\n```")
            return _ANSWER.format(
                body=f"```python\n{_PROGRAM.format(a=k % 9 + 2, b=k % 100)}\n```\n```input\n{k % 50}\n```"
            )

        def _sample(self, prompts, num_generations=1, temperature=None):
            self.recorded.append((self.state.global_step, list(prompts)))
            texts = [self._completion(p) for p in prompts]
            ids = [tokenizer.encode(t, add_special_tokens=False) for t in texts]
            longest = max(len(i) for i in ids)
            if longest > args.tokens:
                raise SystemExit(
                    f"--tokens {args.tokens} is too short for the forced completions: use {longest} or more"
                )
            forcer.set(torch.tensor([i + [forcer.filler] * (args.tokens - len(i)) for i in ids]))
            try:
                return super()._sample(prompts, num_generations, temperature)
            finally:
                forcer.set(None)

    with tempfile.TemporaryDirectory() as out:
        config = AZRConfig(
            output_dir=out,
            max_steps=args.steps,
            propose_per_type=args.per_type,
            solve_per_type=args.per_type,
            mc_rollouts=args.mc,
            num_references=3,
            induction_num_inputs=INDUCTION_INPUTS,
            executor_timeout=2.0,
            **{**_common(args.tokens), "per_device_train_batch_size": _per_device(3 * 2 * args.per_type)},
        )
        model = AutoModelForCausalLM.from_pretrained(model_path)
        # The hook: every generate call of this model gets the forcing processor (GRPO's generation path unchanged).
        model.generate = functools.partial(model.generate, logits_processor=LogitsProcessorList([forcer]))
        trainer = ForcedAZRTrainer(model, args=config, processing_class=tokenizer)
        trainer.train()
        trainer.close()
    last = [row for row in trainer.state.log_history if "step_time" in row][-1]
    step = args.steps - 1
    phases = {"propose": [], "solve": [], "mc": []}
    for s, batch in trainer.recorded:
        if s == step:
            role = trainer.made_by[_key(batch[0])][0]
            phase = "propose" if role == "propose" else "solve" if not phases["solve"] else "mc"
            phases[phase] += batch
    split = {k.removeprefix("azr/time/"): v for k, v in last.items() if k.startswith("azr/time/")}
    return last, split, phases


def run_grpo(model_path: str, prompts: list, args) -> float:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    def constant_reward(completions, **kwargs):
        return [float(i % 2) for i in range(len(completions))]

    # Pairs of AZR prompts become GRPO groups of 2: the same count of sequences, the same prompt lengths overall.
    group_prompts = prompts[::2]
    n = len(group_prompts) * 2
    per_device = _per_device(n)
    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out,
            max_steps=args.steps,
            num_generations=2,
            steps_per_generation=n // per_device,
            gradient_accumulation_steps=n // per_device,
            **{**_common(args.tokens), "per_device_train_batch_size": per_device},
        )
        dataset = Dataset.from_dict({"prompt": group_prompts * args.steps})
        trainer = GRPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(model_path),
            reward_funcs=constant_reward,
            args=config,
            train_dataset=dataset,
            processing_class=AutoTokenizer.from_pretrained(model_path, padding_side="left"),
        )
        trainer.train()
    return [row for row in trainer.state.log_history if "step_time" in row][-1]["step_time"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2, help="steps per trainer; the last one is timed")
    parser.add_argument("--tokens", type=int, default=72, help="tokens per completion (forced)")
    parser.add_argument("--per-type", type=int, default=1, help="propose and solve rows per task type")
    parser.add_argument("--mc", type=int, default=2, help="Monte-Carlo rollouts per valid proposal")
    args = parser.parse_args()

    from azr_trl.offline_models import resolve_model_path

    model_path = resolve_model_path("default")
    t0 = time.perf_counter()
    print(f"AZR: {args.steps} steps with forced valid completions...", flush=True)
    last, split, phases = run_azr(model_path, args)
    prompts = phases["propose"] + phases["solve"] + phases["mc"]
    valid = [v for k, v in last.items() if k.endswith("/propose/valid_rate")]
    print(
        f"model: SmolLM2-135M-Instruct on CPU, {args.tokens} tokens per completion (forced), timed step {args.steps}"
    )
    print(
        f"AZR step generated {len(prompts)} sequences: {len(phases['propose'])} proposals, {len(phases['solve'])} "
        f"solver answers, {len(phases['mc'])} Monte-Carlo rollouts; it trained on "
        f"{len(phases['propose']) + len(phases['solve'])}"
    )
    print(
        f"proposals valid: {sum(valid) / max(len(valid), 1):.0%}; programs run in the executor: "
        f"{last.get('azr/executor/programs', 0):.0f}"
    )
    if not phases["mc"]:
        print("WARNING: no Monte-Carlo rollouts ran in the timed step: the AZR-specific cost is not in the figure")
    print(f"AZR step: {last['step_time']:.2f} s", flush=True)
    print(f"GRPO: {args.steps} steps on the same {len(prompts)} prompts...", flush=True)
    grpo_time = run_grpo(model_path, prompts, args)
    azr_time = last["step_time"]
    print(f"AZR step:  {azr_time:8.2f} s")
    print(
        f"GRPO step: {grpo_time:8.2f} s  (same prompts, same number of sequences and tokens; it trains on all "
        f"{len(prompts)}, AZR on {len(phases['propose']) + len(phases['solve'])})"
    )
    print(f"ratio AZR/GRPO: {azr_time / grpo_time:.3f}  (target <= 1.15)")
    generation = ", ".join(f"{k.removeprefix('generate_')} {split[k]:.2f}" for k in sorted(split) if "generate" in k)
    print(f"AZR time split (s): generation: {generation}")
    print(
        f"  execution waited on {split.get('execute_wait', 0.0):.2f} (executor busy {split.get('execute', 0.0):.2f}, "
        f"mostly overlapped with generation); log-probs {split.get('logprob', 0.0):.2f}; "
        f"optimisation {split.get('optimize', 0.0):.2f}"
    )
    generated = sum(v for k, v in split.items() if "generate" in k)
    measured = generated + sum(split.get(k, 0.0) for k in ("execute_wait", "logprob", "optimize"))
    print(
        f"  everything else AZR does in the step (prompts, parsing, buffer, rewards, TRR++): {azr_time - measured:.2f}"
    )
    print(f"benchmark wall time: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
