"""The trainer's generation path: the prompt token budget, HF generation in chunks, banned token ids, and the
importance-sampling metrics, on the tiny in-code model (and the default model for the over-long seed task)."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from azr_trl import AZRTrainer
from azr_trl.selfplay.batch import build_training_batch
from azr_trl.selfplay.buffer import TaskBuffer
from azr_trl.selfplay.draws import sample_references, solve_prompt_fits
from azr_trl.tasks import Task, get_task_spec
from azr_trl.tasks.task import zero_triplet

from scripts.tiny_azr_run import length_reward, tiny_config
from tiny import make_tiny_model, make_tiny_tokenizer


SCRIPTS = Path(__file__).parent / "scripts"
# A valid triplet whose output (a 2,002-character repr) makes every prompt that shows it long: the abduction solve
# prompt and the deduction/abduction propose prompts. Its deduction solve prompt (program and input) stays short.
LONG_ROW = {"program": "def f(n):\n    return 'x' * n\n", "input": "2000"}


def _trainer(output_dir, tokenizer=None, model=None, **overrides) -> AZRTrainer:
    tokenizer = tokenizer or make_tiny_tokenizer()
    model = model or make_tiny_model(tokenizer)
    args = tiny_config(str(output_dir), **overrides)
    return AZRTrainer(model, args=args, processing_class=tokenizer, reward_funcs=[length_reward])


def _prompt_length(trainer, prompt) -> int:
    return len(trainer._tokenize_prompts([prompt])[0][0])


# ---------------------------------------------------------------------------------------------------- token budget
def test_prompts_over_the_budget_are_skipped_counted_and_never_drawn_again(tmp_path):
    """2,600 positions leave 2,588 prompt tokens next to 12 completion tokens: the zero tasks' prompts fit (about
    2,470 characters at most with the char-level tokenizer), the long seed task's propose and abduction solve prompts
    do not. The steps complete on the zero tasks and the skips are counted once."""
    seed_file = tmp_path / "seeds.jsonl"
    seed_file.write_text(json.dumps(LONG_ROW) + "\n")
    tokenizer = make_tiny_tokenizer()
    trainer = _trainer(
        tmp_path / "run",
        tokenizer,
        make_tiny_model(tokenizer, max_position_embeddings=2600),
        seed_files=[str(seed_file)],
        log_completions=True,
    )
    assert trainer._prompt_token_budget() == 2600 - 12
    long = {t: trainer.buffer.tasks(t)[0] for t in ("deduction", "abduction")}
    assert all(len(task.output) == 2002 for task in long.values())  # re-validated by the executor
    trainer.train()
    trainer.close()

    steps = [row for row in trainer.state.log_history if "loss" in row]
    assert len(steps) == 2 and all(math.isfinite(row["loss"]) for row in steps)
    # Step 1: the long task as a deduction and as an abduction reference, and as an abduction solve task.
    assert steps[0]["azr/too_long/references"] == 2
    assert steps[0]["azr/too_long/solve_tasks"] == 1
    # Step 2: never drawn again for those roles, so nothing new to skip.
    assert steps[1]["azr/too_long/references"] == 0 and steps[1]["azr/too_long/solve_tasks"] == 0
    buffer = trainer.buffer
    assert buffer.is_too_long(long["deduction"], "propose", "deduction")
    assert buffer.is_too_long(long["abduction"], "propose", "abduction")
    assert buffer.is_too_long(long["abduction"], "solve", "abduction")
    # Short enough where it is shown without its output: still solved as deduction, still an induction reference.
    assert not buffer.is_too_long(long["deduction"], "solve", "deduction")
    assert not buffer.is_too_long(long["deduction"], "propose", "induction")
    # The marks travel with the buffer's state (checkpoints), and every generated prompt fitted the budget.
    assert json.loads(json.dumps(buffer.state_dict()))["too_long"]["solve/abduction"] == [long["abduction"].key()]
    lengths = [_prompt_length(trainer, prompt) for prompt in trainer._logs["prompt"]]  # the last step's rows
    assert len(lengths) == trainer.args.rows_per_device and max(lengths) <= trainer._prompt_token_budget()


def test_the_prompt_ceiling_skips_prompts_the_engine_would_take(tmp_path):
    """max_prompt_tokens below the room the engine leaves (4,096 positions - 12): the long seed task is skipped as a
    reference and as an abduction solve task although the engine would take its prompts."""
    seed_file = tmp_path / "seeds.jsonl"
    seed_file.write_text(json.dumps(LONG_ROW) + "\n")
    trainer = _trainer(tmp_path / "run", seed_files=[str(seed_file)], max_prompt_tokens=2588)
    assert trainer._prompt_token_budget() == 2588
    long = trainer.buffer.tasks("abduction")[0]
    solve = trainer.specs["abduction"].solve_prompt(long, trainer.prompt_format)
    assert 2588 < _prompt_length(trainer, solve) <= 4096 - 12
    assert not solve_prompt_fits(trainer, long)
    chosen = sample_references(trainer, "deduction", 1, random.Random(0))
    assert [t.key() for t in chosen] == [zero_triplet("deduction").key()]
    assert sorted((role, task_type) for role, task_type, _ in trainer._too_long_marks) == [
        ("propose", "deduction"),
        ("solve", "abduction"),
    ]
    trainer.close()


def test_a_valid_proposal_too_long_to_solve_gets_no_monte_carlo_rollouts(tmp_path):
    tokenizer = make_tiny_tokenizer()
    trainer = _trainer(tmp_path, tokenizer, make_tiny_model(tokenizer, max_position_embeddings=2600))
    program = LONG_ROW["program"]
    long = Task("abduction", program, input="2000", output=repr("x" * 2000))
    short = Task("abduction", program, input="3", output="'xxx'")
    rates = trainer._monte_carlo_solve_rates([long, None, short])
    assert rates[0] is None and rates[1] is None and rates[2] in (0.0, 0.5, 1.0)
    assert [(role, task.input) for role, _, task in trainer._too_long_marks] == [("solve", "2000")]
    trainer.close()


def test_references_that_fit_alone_but_not_together_are_dropped_longest_first(tmp_path):
    trainer = _trainer(tmp_path)
    tasks = [
        Task("deduction", "def f(s):\n    return s", input=repr("a" * n), output=repr("a" * n)) for n in (40, 80, 120)
    ]
    trainer.buffer = TaskBuffer(["deduction", "abduction", "induction"], seed=0)
    trainer.buffer.add(tasks, step=0)
    spec = trainer.specs["deduction"]
    two_shortest = _prompt_length(trainer, spec.propose_prompt(tasks[:2], trainer.prompt_format))
    trainer._prompt_budget = two_shortest  # all three together are longer; each one alone fits
    chosen = sample_references(trainer, "deduction", 3, random.Random(0))
    assert sorted(len(t.input) for t in chosen) == [42, 82]
    assert trainer._too_long_marks == []  # nothing is marked: each fits on its own
    # With a budget below every single reference, each one is marked and the zero triplet stands in.
    zero = zero_triplet("deduction")
    trainer._prompt_budget = _prompt_length(trainer, spec.propose_prompt([zero], trainer.prompt_format))
    chosen = sample_references(trainer, "deduction", 3, random.Random(0))
    assert [t.key() for t in chosen] == [zero.key()]
    assert sorted(len(task.input) for _, _, task in trainer._too_long_marks) == [42, 82, 122]
    trainer.close()


def test_prompt_token_budget_comes_from_the_engine(tmp_path):
    """HF generate: the model's positions; vLLM server: its own max_model_len, asked once; colocate: the engine's.
    The prompt ceiling caps each of them."""
    trainer = _trainer(tmp_path)
    assert trainer._prompt_token_budget() == 4096 - 12
    asked = []

    def server_info():
        asked.append(True)
        return {"model_config": {"max_model_len": 3000, "logprobs_mode": "processed_logprobs"}}

    trainer.use_vllm, trainer.vllm_mode = True, "server"
    trainer.vllm_generation = SimpleNamespace(vllm_client=SimpleNamespace(get_server_info=server_info))
    del trainer._prompt_budget
    assert trainer._prompt_token_budget() == 3000 - 12
    assert trainer._prompt_token_budget() == 3000 - 12 and len(asked) == 1
    trainer.vllm_mode = "colocate"
    engine = SimpleNamespace(model_config=SimpleNamespace(max_model_len=2048))
    trainer.vllm_generation = SimpleNamespace(llm=SimpleNamespace(llm_engine=engine))
    del trainer._prompt_budget
    assert trainer._prompt_token_budget() == 2048 - 12
    trainer.args.max_prompt_tokens = 1500
    del trainer._prompt_budget
    assert trainer._prompt_token_budget() == 1500
    trainer.close()


def test_a_budget_too_small_for_any_prompt_is_refused_at_start(tmp_path):
    tokenizer = make_tiny_tokenizer()
    with pytest.raises(ValueError, match="max_completion_length=12"):
        _trainer(tmp_path, tokenizer, make_tiny_model(tokenizer, max_position_embeddings=1024))
    with pytest.raises(ValueError, match="prompt has [0-9]+ tokens, more than max_prompt_tokens=1000. Raise max_pr"):
        _trainer(tmp_path, tokenizer, max_prompt_tokens=1000)


def test_the_seeding_phases_untrained_triplet_type_is_checked_at_start(tmp_path):
    """Seeding proposes abductions even when only deductions are trained: the trainer checks that prompt at start
    (the seeding phase checks nothing again), with the trainer's advice."""
    tokenizer = make_tiny_tokenizer()
    deduction_only = {"task_types": ["deduction"], "per_device_train_batch_size": 4}
    trainer = _trainer(tmp_path / "count", tokenizer, **deduction_only)
    fmt, spec = trainer.prompt_format, trainer.specs["deduction"]
    zero = zero_triplet("deduction")
    trained = max(_prompt_length(trainer, p) for p in (spec.propose_prompt([zero], fmt), spec.solve_prompt(zero, fmt)))
    abduction = _prompt_length(trainer, get_task_spec("abduction").propose_prompt([zero_triplet("abduction")], fmt))
    trainer.close()
    assert trained < abduction
    model = make_tiny_model(tokenizer, max_position_embeddings=abduction - 1 + 12)  # 12 completion tokens
    _trainer(tmp_path / "no_seeding", tokenizer, model, **deduction_only).close()  # no seeding phase: it starts
    with pytest.raises(ValueError, match=f"shortest abduction propose prompt has {abduction} tokens.*length=12"):
        _trainer(tmp_path / "seeding", tokenizer, model, seed_num_tasks=4, **deduction_only)


@pytest.mark.slow
def test_default_model_step_completes_with_a_seed_task_longer_than_its_positions(tmp_path, default_model_path):
    """The issue's CPU-demo case: a seed task whose output is ~10k tokens (one token per digit), longer than the
    default model's 8,192 positions. The step runs on HF generate and counts the skipped prompts."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    row = {"program": "def f(n):\n    return ''.join(str(i % 10) for i in range(n))\n", "input": "9990"}
    seed_file = tmp_path / "seeds.jsonl"
    seed_file.write_text(json.dumps(row) + "\n")
    tokenizer = AutoTokenizer.from_pretrained(default_model_path)
    assert len(tokenizer(repr("0123456789" * 999))["input_ids"]) > 8192
    config = tiny_config(
        str(tmp_path / "run"),
        max_steps=1,
        task_types=["deduction", "abduction"],  # the two types whose prompts show the output
        propose_per_type=1,
        solve_per_type=1,
        per_device_train_batch_size=2,
        max_completion_length=8,
        learning_rate=1e-5,
        seed_files=[str(seed_file)],
        max_prompt_tokens=16384,  # the model's positions bind, not the prompt ceiling
    )
    trainer = AZRTrainer(
        AutoModelForCausalLM.from_pretrained(default_model_path), args=config, processing_class=tokenizer
    )
    assert trainer._prompt_token_budget() == 8192 - 8
    trainer.train()
    trainer.close()
    (step,) = [row for row in trainer.state.log_history if "loss" in row]
    assert trainer.state.global_step == 1 and math.isfinite(step["loss"])
    # The long task as a deduction and an abduction reference, and as an abduction solve task.
    assert step["azr/too_long/references"] == 2 and step["azr/too_long/solve_tasks"] == 1


# ---------------------------------------------------------------------------------------------------- chunks
def test_hf_generation_goes_in_chunks_and_keeps_the_rows(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, generation_chunk_size=3)
    model = trainer.accelerator.unwrap_model(trainer.model)
    original, calls = model.generate, []

    def counting_generate(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "generate", counting_generate)
    trainer.generation_config.do_sample = False  # greedy: chunked and whole calls must agree row by row
    prompts = [f"task {i}: reverse the list" for i in range(7)]
    _, chunked, _, _ = trainer._sample(prompts)
    assert calls == [3, 3, 1] and len(chunked) == 7
    calls.clear()
    trainer.args.generation_chunk_size = 100
    _, whole, _, _ = trainer._sample(prompts)
    assert calls == [7]
    assert chunked == whole
    trainer.close()


@pytest.mark.slow
@pytest.mark.distributed
def test_every_rank_makes_the_same_number_of_generate_calls(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).parent / "torchrun"
    script = SCRIPTS / "chunked_generation.py"
    cmd = [str(torchrun), "--nproc_per_node", "2", "--master_port", "29541", str(script), str(tmp_path)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # Chunks of 2: rank 0 has 5 prompts (3 calls), rank 1 has 2 (1 call of its own, then 2 one-token calls on one
    # prompt to keep in step). Its padding rows never reach generate: the calls alone keep the ranks in step.
    assert [r["rows"] for r in ranks] == [5, 2]
    assert ranks[0]["calls"] == [[2, 12], [2, 12], [1, 12]]
    assert ranks[1]["calls"] == [[2, 12], [1, 1], [1, 1]]


# ---------------------------------------------------------------------------------------------------- banned ids
def _thinking_model(tokenizer, think_ids):
    """A tiny model that wants to emit the think tokens: their logits get a large bonus."""
    model = make_tiny_model(tokenizer)

    def prefer_think_tokens(module, inputs, logits):
        logits = logits.clone()
        logits[..., think_ids] += 30.0
        return logits

    model.lm_head.register_forward_hook(prefer_think_tokens)
    return model


def test_removed_think_tokens_are_banned_in_hf_generation(tmp_path):
    from trl import ModelConfig

    from azr_trl.launch import QWEN3_THINK_TOKENS, AZRScriptArguments, get_tokenizer

    tokenizer = make_tiny_tokenizer()
    tokenizer.add_tokens(list(QWEN3_THINK_TOKENS))  # as Qwen3 base models ship them
    think_ids = tokenizer.convert_tokens_to_ids(list(QWEN3_THINK_TOKENS))
    tokenizer.save_pretrained(tmp_path / "tok")
    prompts = ["<think>" + "x" * i for i in range(8)]

    # Without the ban, this model emits the think ids.
    plain = _trainer(tmp_path / "plain", tokenizer, _thinking_model(tokenizer, think_ids))
    _, completions, _, _ = plain._sample(prompts)
    plain.close()
    assert any(set(think_ids) & set(ids) for ids in completions)

    args = tiny_config(str(tmp_path / "banned"))
    script_args = AZRScriptArguments(remove_qwen3_think_tokens=True)
    fixed = get_tokenizer(str(tmp_path / "tok"), script_args, ModelConfig(model_name_or_path="tok"), args)
    assert args.banned_token_ids == sorted(think_ids)
    assert len(fixed("<think>")["input_ids"]) == len("<think>")  # text again
    trainer = AZRTrainer(
        _thinking_model(tokenizer, think_ids), args=args, processing_class=fixed, reward_funcs=[length_reward]
    )
    _, completions, _, _ = trainer._sample(prompts)
    trainer.close()
    assert sum(map(len, completions)) > 0
    assert not any(set(think_ids) & set(ids) for ids in completions)


def _vllm_generation(trainer, mode: str):
    """TRL's own VLLMGeneration for ``mode`` without an engine behind it (vLLM is not installed in this
    environment); the tests below replace only the engine and read what TRL hands it."""
    from trl.generation.vllm_generation import VLLMGeneration

    generation = VLLMGeneration.__new__(VLLMGeneration)
    generation.__dict__.update(
        model=trainer.model,
        accelerator=trainer.accelerator,
        mode=mode,
        structured_outputs_regex=None,
        tensor_parallel_size=1,
        enable_sleep_mode=False,
        repetition_penalty=1.0,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        min_p=0.0,
        max_completion_length=trainer.max_completion_length,
        logprobs=0,
        generation_kwargs={"seed": 7},  # a user's own generation_kwargs stay
    )
    trainer.use_vllm, trainer.vllm_mode, trainer.vllm_generation = True, mode, generation
    trainer._last_loaded_step = trainer.state.global_step  # no weight sync
    trainer._ban_token_ids()
    return generation


def test_banned_token_ids_reach_the_vllm_server_as_logit_bias(tmp_path):
    from trl.generation.vllm_client import VLLMClient

    trainer = _trainer(tmp_path, banned_token_ids=[9, 5])
    bodies = []

    def post(url, json):
        bodies.append((url, json))
        choice = {
            "prompt_token_ids": json["prompt"][0],
            "token_ids": [40, 41],
            "logprobs": {
                "tokens": ["token_id:40", "token_id:41"],
                "token_logprobs": [-0.5, -0.7],
                "top_logprobs": [None, None],
            },
        }
        return SimpleNamespace(status_code=200, json=lambda: {"choices": [choice] * len(json["prompt"])})

    client = VLLMClient.__new__(VLLMClient)
    client.__dict__.update(base_url="http://vllm-server:8000", model="tiny", session=SimpleNamespace(post=post))
    _vllm_generation(trainer, "server").vllm_client = client
    _, completions, logprobs, _ = trainer._sample(["a", "b"])
    trainer.close()
    assert completions == [[40, 41], [40, 41]] and logprobs == [[-0.5, -0.7], [-0.5, -0.7]]
    ((url, body),) = bodies
    assert url == "http://vllm-server:8000/v1/completions"
    # What goes over the wire (JSON object keys are strings; vLLM reads them back as token ids).
    wire = json.loads(json.dumps(body))
    assert wire["logit_bias"] == {"5": -100.0, "9": -100.0}
    assert wire["seed"] == 7 and wire["max_tokens"] == 12


def test_banned_token_ids_reach_colocated_vllm_sampling_params(tmp_path, monkeypatch):
    import trl.generation.vllm_generation as vllm_generation

    trainer = _trainer(tmp_path, banned_token_ids=[9, 5])
    sampling_params = []
    monkeypatch.setattr(
        vllm_generation, "SamplingParams", lambda **kw: sampling_params.append(kw) or kw, raising=False
    )
    logprob = SimpleNamespace(logprob=-0.25, rank=1)

    def generate(prompts, sampling_params, use_tqdm):
        return [
            SimpleNamespace(
                prompt_token_ids=p["prompt_token_ids"],
                outputs=[SimpleNamespace(token_ids=[40], logprobs=[{40: logprob}])],
            )
            for p in prompts
        ]

    _vllm_generation(trainer, "colocate").llm = SimpleNamespace(generate=generate)
    _, completions, _, _ = trainer._sample(["a", "b", "c"])
    trainer.close()
    assert completions == [[40]] * 3
    (params,) = sampling_params
    assert params["logit_bias"] == {5: -100.0, 9: -100.0}
    assert params["seed"] == 7 and params["n"] == 1 and params["max_tokens"] == 12


# ---------------------------------------------------------------------------------------------------- sampling/*
@pytest.mark.parametrize("mode", ["sequence_mask", "token_truncate"])
def test_importance_sampling_metrics_show_a_known_drift(tmp_path, mode):
    """Sampling log-probs that sit a known amount below the trainer's own: every token's log-ratio is +0.1."""
    trainer = _trainer(tmp_path)
    trainer.use_vllm, trainer.vllm_importance_sampling_correction = True, True
    trainer.vllm_importance_sampling_mode = mode
    trainer.vllm_importance_sampling_clip_min, trainer.vllm_importance_sampling_clip_max = None, 3.0
    prompt_ids = [[5, 6, 7], [8, 9]]
    completion_ids = [[10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21], [22, 23]]  # 12 and 2 tokens
    placeholder = [[0.0] * len(c) for c in completion_ids]
    own = build_training_batch(trainer, prompt_ids, completion_ids, placeholder)["old_per_token_logps"]
    drift = 0.1
    sampled = [[own[i, j].item() - drift for j in range(len(c))] for i, c in enumerate(completion_ids)]
    sampled[1][0] = None  # a token vLLM returned no log-prob for: left out of the drift, ratio 1
    trainer._metrics["train"].clear()
    batch = build_training_batch(trainer, prompt_ids, completion_ids, sampled)
    logged = {k: v[-1] for k, v in trainer._metrics["train"].items() if k.startswith("sampling/")}
    trainer.close()

    assert logged["sampling/sampling_logp_difference/mean"] == pytest.approx(drift, abs=1e-5)
    assert logged["sampling/sampling_logp_difference/max"] == pytest.approx(drift, abs=1e-5)
    if mode == "sequence_mask":
        # Sequence ratios exp(12 * 0.1) = 3.32 > 3 (masked: the whole 12-token row) and exp(0.1) = 1.105.
        assert batch["importance_sampling_ratio"].shape == (2, 1)
        assert logged["sampling/importance_sampling_ratio/min"] == pytest.approx(0.0)
        assert logged["sampling/importance_sampling_ratio/max"] == pytest.approx(math.exp(drift), rel=1e-4)
        assert logged["sampling/importance_sampling_ratio/mean"] == pytest.approx(math.exp(drift) / 2, rel=1e-4)
        assert logged["sampling/importance_sampling_ratio/clipped_fraction"] == pytest.approx(1 / 2)
        assert logged["sampling/masked_token_fraction"] == pytest.approx(12 / 14)
    else:
        # Token ratios exp(0.1) everywhere but the token without a vLLM log-prob (ratio 1); nothing clipped.
        ratios = [math.exp(drift)] * 13 + [1.0]
        assert logged["sampling/importance_sampling_ratio/min"] == pytest.approx(1.0, rel=1e-5)
        assert logged["sampling/importance_sampling_ratio/max"] == pytest.approx(math.exp(drift), rel=1e-4)
        assert logged["sampling/importance_sampling_ratio/mean"] == pytest.approx(sum(ratios) / 14, rel=1e-4)
        assert logged["sampling/importance_sampling_ratio/clipped_fraction"] == 0.0
        assert logged["sampling/masked_token_fraction"] == 0.0
    assert torch.isfinite(batch["importance_sampling_ratio"]).all()
