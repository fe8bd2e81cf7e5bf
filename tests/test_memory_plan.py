"""The memory plan of the pre-flight and `--dry-run`: magnitudes for real model shapes (the recipes' shapes shipped
with azr-trl, no weights, no Hub), every GPU recipe at its prompt ceiling, and a dry run that never loads a model."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from transformers import Qwen2Config

from azr_trl import memory_plan
from azr_trl.known_models import KNOWN_MODEL_CONFIGS, known_model_config
from azr_trl.launch import parse_args, run
from azr_trl.memory_plan import GIB, TrainingLayout
from azr_trl.run_plan import plan_run


ROOT = Path(__file__).resolve().parent.parent
GPU_RECIPES = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if "use_cpu: true" not in p.read_text())
# Parameter counts published with each model (model cards): the shipped shapes must add up to them.
PUBLISHED_PARAMS = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": 0.135e9,
    "Qwen/Qwen2.5-Coder-0.5B-Instruct": 0.494e9,
    "Qwen/Qwen2.5-Coder-1.5B-Instruct": 1.54e9,
    "Qwen/Qwen2.5-Coder-3B": 3.09e9,
    "Qwen/Qwen2.5-Coder-7B": 7.62e9,
    "Qwen/Qwen2.5-7B": 7.62e9,
    "Qwen/Qwen2.5-Coder-14B": 14.7e9,
    "Qwen/Qwen2.5-14B": 14.7e9,
    "meta-llama/Llama-3.1-8B": 8.03e9,
    "Qwen/Qwen3-4B-Base": 4.02e9,
}


def _plan(recipe: Path, *overrides: str):
    """The plan of a recipe with its own model id: tests run offline (HF_HUB_OFFLINE), so the shape shipped with
    azr-trl is what the plan finds."""
    script_args, args, model_args = parse_args(["--config", str(recipe), "--dry-run", *overrides])
    return plan_run(script_args, args, model_args)


QWEN7B_RECIPE = ROOT / "recipes" / "qwen2.5-7b" / "paper_4gpu.yaml"
QLORA_RECIPE = ROOT / "recipes" / "qwen2.5-coder-7b" / "qlora_1gpu_24gb.yaml"


def _activations(plan) -> float:
    return next(v for k, v in plan.components.items() if k.startswith("activations"))


@pytest.mark.parametrize("name", sorted(KNOWN_MODEL_CONFIGS))
def test_the_shipped_shapes_add_up_to_the_published_sizes(name):
    shape = memory_plan.model_shape(known_model_config(name))
    assert shape.total_params == pytest.approx(PUBLISHED_PARAMS[name], rel=0.01)
    assert known_model_config(name, revision="main") is not None
    assert known_model_config(name, revision="a1b2c3") is None  # another revision may have another shape


def test_7b_magnitudes_with_zero3_over_two_gpus():
    """ZeRO-3 over 2 GPUs, micro-batch 2, 8k completions: the layout the 7B recipes used to ship, over 80 GB."""
    text, plan = _plan(QWEN7B_RECIPE, "--accelerate_config", "accelerate_configs/zero3.yaml")
    assert "7.62B parameters" in text
    states = plan.components["params + grads + optimizer (DeepSpeed ZeRO-3 estimator)"]
    # DeepSpeed: 18 bytes per parameter over 2 GPUs plus the largest layer (the 152k x 3584 embedding) in fp32.
    assert states == pytest.approx(18 * 7.62e9 / 2 + 4 * 152064 * 3584, rel=0.01)
    assert 60 * GIB < states < 70 * GIB
    activations = next(v for k, v in plan.components.items() if k.startswith("activations (micro-batch 2"))
    assert 8 * GIB < activations < 25 * GIB
    assert not plan.fits and plan.total_bytes > 80 * GIB
    assert "DOES NOT FIT" in text and "WARNING: estimated" in text
    # Micro-batch 1 halves the activations; offloading the optimizer removes most of the model states.
    _, mb1 = _plan(QWEN7B_RECIPE, "--accelerate_config", "accelerate_configs/zero3.yaml",
                   "--per_device_train_batch_size", "1")  # fmt: skip
    assert _activations(mb1) == pytest.approx(activations / 2)
    _, offload = _plan(QWEN7B_RECIPE, "--accelerate_config", "accelerate_configs/zero3_offload.yaml")
    assert offload.fits and offload.total_bytes < 40 * GIB


def test_activations_are_sized_at_the_prompt_ceiling_plus_the_completion():
    """Every micro-batch is padded to its longest row, and the prompt budget admits prompts up to the ceiling."""
    text, plan = _plan(QWEN7B_RECIPE)
    _, args, _ = parse_args(["--config", str(QWEN7B_RECIPE), "--dry-run"])
    longest = args.max_prompt_tokens + args.max_completion_length
    assert f"micro-batch 2 x {longest} tokens" in text
    assert f"sequence length {longest}: {args.max_prompt_tokens} prompt tokens (max_prompt_tokens)" in text
    # A lower ceiling shrinks the activations in proportion to the sequence.
    _, lower = _plan(QWEN7B_RECIPE, "--max_prompt_tokens", "2048")
    assert _activations(lower) == pytest.approx(_activations(plan) * (2048 + 8096) / longest)
    # Where the engine's own limit leaves less room (colocate's vllm_max_model_length), that limit binds.
    _, colocate = _plan(QWEN7B_RECIPE, "--vllm_mode", "colocate", "--vllm_max_model_length", "12000")
    assert "micro-batch 2 x 12000 tokens" in next(k for k in colocate.components if k.startswith("activations"))


@pytest.mark.parametrize("recipe", GPU_RECIPES, ids=lambda p: p.relative_to(ROOT / "recipes").as_posix())
def test_every_gpu_recipe_fits_its_gpus_at_the_prompt_ceiling(recipe, capsys, monkeypatch):
    """`HF_HUB_OFFLINE=1 azr-trl train --config R --dry-run` (conftest sets the variable): the shipped shape, the
    longest sequence the run admits, and what CUDA can allocate of the recipe's GPU (79.6 GiB of an 80 GB one)."""
    assert run(["--config", str(recipe), "--dry-run"]) == 0
    out = capsys.readouterr().out
    script_args, args, _ = parse_args(["--config", str(recipe), "--dry-run"])
    usable = script_args.gpu_memory_gb * memory_plan.USABLE_GPU_FRACTION
    assert re.search(rf"total of {usable:.1f} GiB usable: fits\n", out), out
    assert "shipped with azr-trl" in out and "WARNING" not in out
    assert f"x {args.max_prompt_tokens + args.max_completion_length} tokens" in out
    # The layout the plan read is the one the header launches.
    header = recipe.read_text().split("\n# Model arguments")[0]
    assert f"--config_file {script_args.accelerate_config}" in header
    if script_args.num_training_processes > 1:
        assert f"--num_processes {script_args.num_training_processes}" in header


def test_lora_recipe_vllm_share_keeps_room_for_kv_cache():
    recipe = ROOT / "recipes" / "qwen2.5-coder-3b" / "lora_1gpu_24gb.yaml"
    text, plan = _plan(recipe)
    assert "vLLM KV cache" in text
    # The advice the recipe used to give (0.3 of 24 GB) leaves no KV cache after 6 GB of weights.
    text, plan = _plan(recipe, "--vllm_gpu_memory_utilization", "0.3")
    assert any("KV cache" in w and "raise vllm_gpu_memory_utilization" in w for w in plan.warnings), text
    assert "to 0.3" not in recipe.read_text()


def test_hf_generation_counts_the_kv_cache_of_its_largest_call():
    _, plan = _plan(QLORA_RECIPE)
    _, args, _ = parse_args(["--config", str(QLORA_RECIPE), "--dry-run"])
    largest = 3 * args.propose_per_type * args.mc_rollouts  # the Monte-Carlo call
    chunk = min(largest, args.generation_chunk_size)
    kv_per_token = 2 * 28 * 4 * 128 * 2  # layers x (keys, values) x kv heads x head dim x bf16
    expected = kv_per_token * chunk * memory_plan.sequence_tokens(args)[0]
    hf = [v for k, v in plan.components.items() if k.startswith("HF generate")]
    activations = [v for k, v in plan.components.items() if k.startswith("activations")]
    assert (hf and hf[0] == pytest.approx(expected)) or (activations and activations[0] >= expected)


def test_evaluation_on_hf_generate_is_counted_and_a_layout_that_cannot_hold_it_is_refused(capsys):
    evaluation = ["--eval_benchmarks", "cruxeval_o", "--eval_steps", "10"]
    # Through vLLM, evaluation costs the training GPUs nothing: the server recipes keep their plan.
    server = ROOT / "recipes" / "qwen2.5-14b" / "paper_8gpu.yaml"
    _, with_eval = _plan(server, *evaluation)
    _, without = _plan(server)
    assert with_eval.total_bytes == without.total_bytes and with_eval.refusal is None
    # On HF generate the evaluation's KV cache is a phase of its own: within the peak for the QLoRA recipe...
    text, plan = _plan(QLORA_RECIPE, *evaluation)
    assert plan.refusal is None and "evaluation (HF generate): " in text
    # ...but a 16k-token evaluation budget cannot fit beside the model: refused, before any weights load.
    long_eval = [*evaluation, "--eval_max_new_tokens", "16384"]
    _, plan = _plan(QLORA_RECIPE, *long_eval)
    assert "evaluation (HF generate): KV cache of 32 sequences x 22528 tokens" in plan.components
    assert plan.refusal is not None and "use_vllm: true" in plan.refusal
    assert run(["--config", str(QLORA_RECIPE), "--dry-run", *long_eval]) == 2
    assert "error: the in-training evaluation (eval_benchmarks) on HF generate takes" in capsys.readouterr().err


def test_zero3_generation_counts_the_gathered_model():
    """HF generate under ZeRO-3 gathers every parameter next to the shards (about 27.5 GiB for a 14B model)."""
    _, plan = _plan(ROOT / "recipes" / "qwen2.5-14b" / "paper_8gpu.yaml", "--use_vllm", "false",
                    "--accelerate_config", "accelerate_configs/zero3.yaml")  # fmt: skip
    (generation,) = [v for k, v in plan.components.items() if k.endswith("the model gathered from ZeRO-3")]
    assert generation > 2 * 14.7e9


def test_layout_from_the_launcher_environment():
    env = {
        "WORLD_SIZE": "4",
        "ACCELERATE_USE_DEEPSPEED": "true",
        "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3",
        "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE": "cpu",
    }
    # The launcher wins over the recipe's fields.
    layout = memory_plan.training_layout("accelerate_configs/zero2.yaml", 2, env=env)
    assert layout == TrainingLayout(4, 3, True, False, "from the launcher")
    ddp = memory_plan.training_layout(None, None, env={"WORLD_SIZE": "2"})
    assert (ddp.processes, ddp.zero_stage) == (2, None)
    assert memory_plan.training_layout(None, None, env={}).processes == 1


def test_dry_run_prints_the_plan_without_loading_weights(tmp_path, capsys, monkeypatch):
    """A local folder's config.json wins over the shipped shape (here a smaller model under the recipe's name)."""
    import azr_trl.launch as train_module

    def no_training(*args, **kwargs):
        raise AssertionError("--dry-run must not load a model or train")

    monkeypatch.setattr(train_module, "main", no_training)
    monkeypatch.setattr(train_module, "get_model", no_training)
    folder = tmp_path / "Qwen2.5-3B-local"
    Qwen2Config(**{k: v for k, v in KNOWN_MODEL_CONFIGS["Qwen/Qwen2.5-Coder-3B"].items() if k != "model_type"}
                ).save_pretrained(folder)  # fmt: skip
    assert run(["--config", str(QWEN7B_RECIPE), "--model_name_or_path", str(folder), "--dry-run"]) == 0
    out = capsys.readouterr().out
    for part in ("rows per step", "generation calls per step", "tokens per step", "memory per training GPU", "total"):
        assert part in out
    assert f"3.09B parameters, from the config of {folder}" in out


def test_dry_run_offline_for_an_unknown_model_says_what_to_do_at_once(capsys):
    """With HF_HUB_OFFLINE (set by conftest) a model outside the recipes' shapes is not looked for on the Hub: the
    plan keeps the step and names the way out, without half a minute of retries."""
    start = time.monotonic()
    assert run(["--config", str(QWEN7B_RECIPE), "--model_name_or_path", "someone/Unknown-9B", "--dry-run"]) == 0
    assert time.monotonic() - start < 15
    out = capsys.readouterr().out
    assert "generation calls per step: 3 (vLLM server)" in out and "monte-carlo 1536" in out
    assert "no memory estimate: HF_HUB_OFFLINE is set and the config of someone/Unknown-9B" in out
    assert "point model_name_or_path at a folder holding its config.json" in out


def test_dry_run_flag_forms():
    from azr_trl.preflight import wants_dry_run

    assert wants_dry_run(["--dry-run"]) and wants_dry_run(["--dry-run", "--max_steps", "1"])
    assert wants_dry_run(["--dry_run", "true"]) and wants_dry_run(["--dry-run=true"])
    assert not wants_dry_run(["--dry_run", "false"]) and not wants_dry_run(["--max_steps", "1"])


def test_planning_under_a_zero3_launch_runs_no_collectives():
    """Under ZeRO-3, transformers builds models inside `deepspeed.zero.Init` (collectives); only the main process
    plans, so the plan must build its meta model outside it, and leave the run's DeepSpeed config in place."""
    from transformers.integrations import HfDeepSpeedConfig
    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled, unset_hf_deepspeed_config

    ds_config = HfDeepSpeedConfig({"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": 1})
    try:
        assert is_deepspeed_zero3_enabled()
        shape = memory_plan.model_shape(known_model_config("Qwen/Qwen2.5-Coder-3B"))
        assert shape.total_params == pytest.approx(3.09e9, rel=0.01)
        assert is_deepspeed_zero3_enabled()
    finally:
        unset_hf_deepspeed_config()
    del ds_config
