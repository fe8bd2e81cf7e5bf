"""The memory plan of the pre-flight and `--dry-run`: magnitudes for real model shapes (configs built in code, no
weights), the layouts of the GPU recipes, and a dry run that never loads a model."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import LlamaConfig, Qwen2Config, Qwen3Config

from azr_trl import memory_plan
from azr_trl.launch import parse_args, run
from azr_trl.memory_plan import GIB, TrainingLayout, plan_run


ROOT = Path(__file__).resolve().parent.parent
GPU_RECIPES = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if p.parent.name != "smollm2-135m")

# The published shapes of the recipes' models (their config.json on the Hub), without weights.
QWEN25_7B = dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                 num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768,
                 tie_word_embeddings=False)  # fmt: skip
QWEN25_14B = dict(vocab_size=152064, hidden_size=5120, intermediate_size=13824, num_hidden_layers=48,
                  num_attention_heads=40, num_key_value_heads=8, max_position_embeddings=32768,
                  tie_word_embeddings=False)  # fmt: skip
QWEN25_3B = dict(vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                 num_attention_heads=16, num_key_value_heads=2, max_position_embeddings=32768,
                 tie_word_embeddings=True)  # fmt: skip
MODEL_CONFIGS = {
    "qwen2.5-7b": lambda: Qwen2Config(**QWEN25_7B),
    "qwen2.5-coder-7b": lambda: Qwen2Config(**QWEN25_7B),
    "qwen2.5-14b": lambda: Qwen2Config(**QWEN25_14B),
    "qwen2.5-coder-14b": lambda: Qwen2Config(**QWEN25_14B),
    "qwen2.5-coder-3b": lambda: Qwen2Config(**QWEN25_3B),
    "llama-3.1-8b": lambda: LlamaConfig(
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=131072,
    ),  # fmt: skip
    "qwen3-4b-base": lambda: Qwen3Config(
        vocab_size=151936,
        hidden_size=2560,
        intermediate_size=9728,
        num_hidden_layers=36,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
    ),  # fmt: skip
}


def _config_dir(tmp_path: Path, model: str) -> Path:
    folder = tmp_path / model
    if not folder.exists():
        MODEL_CONFIGS[model]().save_pretrained(folder)  # config.json only: no weights anywhere
    return folder


def _plan(tmp_path, recipe: Path, *overrides: str):
    model = _config_dir(tmp_path, recipe.parent.name)
    script_args, args, model_args = parse_args(
        ["--config", str(recipe), "--model_name_or_path", str(model), "--dry-run", *overrides]
    )
    return plan_run(script_args, args, model_args)


QWEN7B_RECIPE = ROOT / "recipes" / "qwen2.5-7b" / "paper_4gpu.yaml"


def test_7b_magnitudes_with_zero3_over_two_gpus(tmp_path):
    """ZeRO-3 over 2 GPUs, micro-batch 2, 8k completions: the layout the 7B recipes used to ship, over 80 GB."""
    text, plan = _plan(tmp_path, QWEN7B_RECIPE, "--accelerate_config", "accelerate_configs/zero3.yaml")
    assert "7.62B parameters" in text
    states = plan.components["params + grads + optimizer (DeepSpeed ZeRO-3 estimator)"]
    # DeepSpeed: 18 bytes per parameter over 2 GPUs plus the largest layer (the 152k x 3584 embedding) in fp32.
    assert states == pytest.approx(18 * 7.62e9 / 2 + 4 * 152064 * 3584, rel=0.01)
    assert 60 * GIB < states < 70 * GIB
    activations = next(v for k, v in plan.components.items() if k.startswith("activations (micro-batch 2"))
    assert 8 * GIB < activations < 20 * GIB
    assert not plan.fits and plan.total_bytes > 80 * GIB
    assert "DOES NOT FIT" in text and "WARNING: estimated" in text
    # Micro-batch 1 halves the activations; offloading the optimizer removes most of the model states.
    _, mb1 = _plan(tmp_path, QWEN7B_RECIPE, "--accelerate_config", "accelerate_configs/zero3.yaml",
                   "--per_device_train_batch_size", "1")  # fmt: skip
    mb1_activations = next(v for k, v in mb1.components.items() if k.startswith("activations"))
    assert mb1_activations == pytest.approx(activations / 2)
    _, offload = _plan(tmp_path, QWEN7B_RECIPE, "--accelerate_config", "accelerate_configs/zero3_offload.yaml")
    assert offload.fits and offload.total_bytes < 40 * GIB


@pytest.mark.parametrize("recipe", GPU_RECIPES, ids=lambda p: p.relative_to(ROOT / "recipes").as_posix())
def test_every_gpu_recipe_fits_its_gpus(tmp_path, recipe):
    text, plan = _plan(tmp_path, recipe)
    assert plan is not None, text
    assert plan.fits, text
    assert not plan.warnings, text
    # The layout the plan read is the one the header launches.
    header = recipe.read_text().split("\n# Model arguments")[0]
    script_args, _, _ = parse_args(["--config", str(recipe), "--dry-run"])
    assert f"--config_file {script_args.accelerate_config}" in header
    if script_args.num_training_processes > 1:
        assert f"--num_processes {script_args.num_training_processes}" in header


def test_lora_recipe_vllm_share_keeps_room_for_kv_cache(tmp_path):
    recipe = ROOT / "recipes" / "qwen2.5-coder-3b" / "lora_1gpu_24gb.yaml"
    text, plan = _plan(tmp_path, recipe)
    assert "vLLM KV cache" in text
    # The advice the recipe used to give (0.3 of 24 GB) leaves no KV cache after 6 GB of weights.
    text, plan = _plan(tmp_path, recipe, "--vllm_gpu_memory_utilization", "0.3")
    assert any("KV cache" in w and "raise vllm_gpu_memory_utilization" in w for w in plan.warnings), text
    assert "to 0.3" not in recipe.read_text()


def test_hf_generation_counts_the_kv_cache_of_its_largest_call(tmp_path):
    recipe = ROOT / "recipes" / "qwen2.5-coder-7b" / "qlora_1gpu_24gb.yaml"
    _, plan = _plan(tmp_path, recipe)
    _, args, _ = parse_args(["--config", str(recipe), "--dry-run"])
    largest = 3 * args.propose_per_type * args.mc_rollouts  # the Monte-Carlo call
    chunk = min(largest, getattr(args, "generation_chunk_size", None) or largest)
    kv_per_token = 2 * 28 * 4 * 128 * 2  # layers x (keys, values) x kv heads x head dim x bf16
    expected = kv_per_token * chunk * memory_plan.sequence_tokens(args)[0]
    hf = [v for k, v in plan.components.items() if k.startswith("HF generate")]
    activations = [v for k, v in plan.components.items() if k.startswith("activations")]
    assert (hf and hf[0] == pytest.approx(expected)) or (activations and activations[0] >= expected)


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


@pytest.mark.parametrize("recipe", GPU_RECIPES, ids=lambda p: p.relative_to(ROOT / "recipes").as_posix())
def test_dry_run_prints_the_plan_without_loading_weights(tmp_path, recipe, capsys, monkeypatch):
    import azr_trl.launch as train_module

    def no_training(*args, **kwargs):
        raise AssertionError("--dry-run must not load a model or train")

    monkeypatch.setattr(train_module, "main", no_training)
    monkeypatch.setattr(train_module, "get_model", no_training)
    model = _config_dir(tmp_path, recipe.parent.name)
    assert run(["--config", str(recipe), "--model_name_or_path", str(model), "--dry-run"]) == 0
    out = capsys.readouterr().out
    for part in ("rows per step", "generation calls per step", "tokens per step", "memory per training GPU", "total"):
        assert part in out


def test_dry_run_without_a_reachable_config_still_plans_the_step(capsys):
    # Tests run offline: the Hub id's config cannot be fetched, so the plan says so and keeps the rest.
    assert run(["--config", str(QWEN7B_RECIPE), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "generation calls per step: 3 (vLLM server)" in out and "monte-carlo 1536" in out
    assert "no memory estimate: the config of Qwen/Qwen2.5-7B is not available here" in out


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
        shape = memory_plan.model_shape(Qwen2Config(**QWEN25_3B))
        assert shape.total_params == pytest.approx(3.09e9, rel=0.01)
        assert is_deepspeed_zero3_enabled()
    finally:
        unset_hf_deepspeed_config()
    del ds_config
