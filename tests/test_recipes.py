"""Recipes and accelerate configs: every file parses with the project's/accelerate's own loaders, and bad recipes fail
before any model is loaded with a one-line message naming the problem."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from azr_trl.launch import RecipeError, parse_args, run


ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted((ROOT / "recipes").rglob("*.yaml"))
PAPER_RECIPES = [p for p in RECIPES if p.name.startswith("paper_")]
ACCELERATE_CONFIGS = sorted((ROOT / "accelerate_configs").glob("*.yaml"))
DEMO = ROOT / "recipes" / "smollm2-135m" / "cpu_demo.yaml"


def _parse(recipe: Path, *overrides: str):
    # GPU recipes set bf16, which TrainingArguments refuses on a machine without a GPU unless use_cpu is set.
    return parse_args(["--config", str(recipe), "--use_cpu", "true", *overrides])


def _header(recipe: Path) -> str:
    lines = recipe.read_text().splitlines()
    return "\n".join(line for line in lines[: next(i for i, ln in enumerate(lines) if not ln.startswith("#"))])


def test_recipes_exist():
    names = {p.relative_to(ROOT / "recipes").as_posix() for p in RECIPES}
    for model in (
        "qwen2.5-coder-3b",
        "qwen2.5-coder-7b",
        "qwen2.5-coder-14b",
        "qwen2.5-7b",
        "qwen2.5-14b",
        "llama-3.1-8b",
        "qwen3-4b-base",
    ):
        assert any(n.startswith(f"{model}/paper_") for n in names), model
    assert "smollm2-135m/cpu_demo.yaml" in names
    assert any("lora" in n and "qlora" not in n for n in names)
    assert any("qlora" in n for n in names)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.relative_to(ROOT / "recipes").as_posix())
def test_recipe_parses_and_validates(recipe):
    script_args, args, model_args = _parse(recipe)
    assert model_args.model_name_or_path
    assert args.max_steps > 0
    # AZRConfig's batch arithmetic held: the micro-batches of a step make one optimizer step.
    assert args.rows_per_device % args.per_device_train_batch_size == 0
    assert args.gradient_accumulation_steps * args.per_device_train_batch_size == args.rows_per_device
    header = _header(recipe)
    assert "Hardware:" in header
    # The header's launch command runs this very file.
    assert f"--config recipes/{recipe.relative_to(ROOT / 'recipes').as_posix()}" in header


@pytest.mark.parametrize("recipe", PAPER_RECIPES, ids=lambda p: p.parent.name)
def test_paper_recipes_use_the_paper_hyperparameters(recipe):
    _, args, model_args = _parse(recipe)
    processes = int(re.search(r"--num_processes (\d+)", _header(recipe)).group(1))
    # 64 tasks per task type and role per step, over all training processes.
    assert args.propose_per_type * processes == 64
    assert args.solve_per_type * processes == 64
    assert args.task_types == ["deduction", "abduction", "induction"]
    assert args.learning_rate == 1e-6 and str(args.lr_scheduler_type.value) == "constant"
    assert (args.num_references, args.mc_rollouts, args.temperature, args.beta) == (6, 8, 1.0, 0.0)
    assert args.entropy_coef == 0.001
    assert args.max_completion_length == 8096
    assert args.max_steps == 500
    assert args.bf16 and args.activation_checkpointing
    assert args.use_vllm and args.vllm_mode == "server"
    assert args.prompt_format == "r1"  # all reference models are base models
    assert model_args.dtype == "bfloat16"
    assert args.report_to == ["wandb"] and args.push_to_hub and args.hub_model_id


def test_model_specific_settings():
    _, llama, _ = _parse(ROOT / "recipes" / "llama-3.1-8b" / "paper_4gpu.yaml")
    assert llama.reject_multiple_functions is False
    script_args, qwen3, _ = _parse(ROOT / "recipes" / "qwen3-4b-base" / "paper_2gpu.yaml")
    assert script_args.remove_qwen3_think_tokens
    assert qwen3.reject_multiple_functions is False


def test_lora_and_qlora_recipes():
    script_args, args, model_args = _parse(ROOT / "recipes" / "qwen2.5-coder-3b" / "lora_1gpu_24gb.yaml")
    assert model_args.use_peft and not model_args.load_in_4bit
    assert args.use_vllm and args.vllm_mode == "colocate" and args.vllm_enable_sleep_mode is False
    _, args, model_args = _parse(ROOT / "recipes" / "qwen2.5-coder-7b" / "qlora_1gpu_24gb.yaml")
    assert model_args.use_peft and model_args.load_in_4bit
    assert not args.use_vllm  # merged 4-bit weights cannot be synced into vLLM


def test_demo_recipe_is_cpu_and_offline():
    script_args, args, model_args = parse_args(["--config", str(DEMO)])  # no override needed: it is a CPU recipe
    assert model_args.model_name_or_path == "default"
    assert args.use_cpu and not args.bf16 and not args.use_vllm
    assert args.report_to in ([], ["none"], "none") and not args.push_to_hub
    assert args.log_completions
    assert args.save_strategy == "steps" and args.save_steps <= args.max_steps  # a checkpoint exists at the end
    assert args.executor_timeout <= 3


@pytest.mark.parametrize("config", ACCELERATE_CONFIGS, ids=lambda p: p.name)
def test_accelerate_config_loads(config):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    loaded = load_config_from_file(str(config))
    raw = yaml.safe_load(config.read_text())
    assert loaded.num_processes == raw["num_processes"]
    if config.stem.startswith("zero"):
        assert loaded.distributed_type == DistributedType.DEEPSPEED
        stage = int(config.stem[4])
        assert loaded.deepspeed_config["zero_stage"] == stage
        assert loaded.deepspeed_config["zero3_init_flag"] is (stage == 3)


def test_expected_accelerate_configs():
    assert {"zero3.yaml", "zero2.yaml", "ddp.yaml", "single_gpu.yaml"} <= {p.name for p in ACCELERATE_CONFIGS}


#############
# Bad recipes
#############
def _bad_recipe(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load(DEMO.read_text())
    data.update(changes)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_unknown_key_names_key_and_file(tmp_path):
    recipe = _bad_recipe(tmp_path, propose_per_typ=4)
    with pytest.raises(RecipeError) as err:
        parse_args(["--config", str(recipe)])
    message = str(err.value)
    assert str(recipe) in message and "`propose_per_typ`" in message
    assert "did you mean `propose_per_type`" in message


def test_renamed_key_gets_a_hint(tmp_path):
    recipe = _bad_recipe(tmp_path, torch_dtype="bfloat16")
    with pytest.raises(RecipeError, match="unknown key `torch_dtype` \\(use `dtype`\\)"):
        parse_args(["--config", str(recipe)])


def test_missing_seed_file(tmp_path):
    recipe = _bad_recipe(tmp_path, seed_files=["no/such/seeds.jsonl"])
    with pytest.raises(RecipeError, match="seed_files: no/such/seeds.jsonl does not exist"):
        parse_args(["--config", str(recipe)])


def test_missing_chat_template_file(tmp_path):
    recipe = _bad_recipe(tmp_path, chat_template="templates/missing.jinja")
    with pytest.raises(RecipeError, match="chat_template: templates/missing.jinja does not exist"):
        parse_args(["--config", str(recipe)])


def test_reward_funcs_must_import(tmp_path):
    recipe = _bad_recipe(tmp_path, reward_funcs=["no_such_module.brevity"])
    with pytest.raises(RecipeError, match="reward_funcs: cannot load no_such_module.brevity"):
        parse_args(["--config", str(recipe)])
    script_args, _, _ = parse_args(
        ["--config", str(DEMO), "--reward_funcs", "azr_trl.selfplay.rewards.make_azr_reward_funcs"]
    )
    assert script_args.reward_funcs == ["azr_trl.selfplay.rewards.make_azr_reward_funcs"]


def test_impossible_batch_arithmetic(tmp_path):
    # 3 task types x (1 + 1) = 6 rows per device, which a micro-batch of 5 does not divide.
    recipe = _bad_recipe(tmp_path, per_device_train_batch_size=5)
    with pytest.raises(RecipeError) as err:
        parse_args(["--config", str(recipe)])
    assert str(recipe) in str(err.value)
    assert "per_device_train_batch_size=5" in str(err.value)


def test_missing_recipe_and_unknown_flag(tmp_path):
    with pytest.raises(RecipeError, match="recipe .*nope.yaml does not exist"):
        parse_args(["--config", str(tmp_path / "nope.yaml")])
    with pytest.raises(RecipeError, match="unknown command-line argument.*--no_such_flag"):
        parse_args(["--config", str(DEMO), "--no_such_flag", "1"])


def test_overrides_win_over_the_recipe():
    overrides = ["--max_steps", "1", "--propose_per_type", "1", "--per_device_train_batch_size", "3"]
    _, args, _ = parse_args(["--config", str(DEMO), *overrides])
    assert args.max_steps == 1 and args.propose_per_type == 1


def test_run_prints_one_line_and_exits_nonzero(tmp_path, capsys):
    recipe = _bad_recipe(tmp_path, seed_files=["missing.jsonl"])
    assert run(["--config", str(recipe)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "missing.jsonl" in err and "\n" not in err


def test_cli_bad_recipe_has_no_traceback(tmp_path, azr_trl_cli):
    recipe = _bad_recipe(tmp_path, not_a_field=1)
    result = subprocess.run(
        [str(azr_trl_cli), "train", "--config", str(recipe)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"error: {recipe}: unknown key `not_a_field`" in result.stderr


##########################################
# GPU layouts, importance sampling, dropout
##########################################
VLLM_RECIPES = [p for p in RECIPES if "use_vllm: true" in p.read_text()]
SERVER_RECIPES = [p for p in RECIPES if "vllm_mode: server" in p.read_text()]
PEFT_RECIPES = [p for p in RECIPES if "use_peft: true" in p.read_text()]


@pytest.mark.parametrize("recipe", VLLM_RECIPES, ids=lambda p: p.relative_to(ROOT / "recipes").as_posix())
def test_vllm_recipes_correct_importance_sampling_per_token(recipe):
    _, args, _ = _parse(recipe)
    # TRL's default, sequence_mask, zeroes a whole long completion whose summed log-prob drift passes ln(C_max).
    assert args.vllm_importance_sampling_correction
    assert args.vllm_importance_sampling_mode == "token_truncate"
    assert args.vllm_importance_sampling_clip_max == 3.0


@pytest.mark.parametrize("recipe", SERVER_RECIPES, ids=lambda p: p.relative_to(ROOT / "recipes").as_posix())
def test_server_recipes_wait_long_enough_for_the_monte_carlo_call(recipe):
    _, args, _ = _parse(recipe)
    processes = int(re.search(r"--num_processes (\d+)", _header(recipe)).group(1))
    rollouts = len(args.task_types) * args.propose_per_type * args.mc_rollouts * processes
    assert rollouts == 1536  # the paper's 64 tasks per type, 8 rollouts each, in one server call
    # A 14B model on 4 GPUs decodes ~4,000 tokens/s over a large batch: the call may take ~50 minutes, while the
    # other ranks wait in a collective bounded by ddp_timeout (NCCL's default: 30 minutes).
    worst_case_seconds = rollouts * args.max_completion_length / 4000
    assert args.ddp_timeout >= 2 * worst_case_seconds


@pytest.mark.parametrize("recipe", PEFT_RECIPES, ids=lambda p: p.relative_to(ROOT / "recipes").as_posix())
def test_lora_recipes_sample_without_dropout(recipe):
    _, args, model_args = _parse(recipe)
    assert args.disable_dropout
    assert model_args.lora_dropout == 0.0


def test_recipe_and_accelerate_paths_in_docs_exist():
    """Usage lines name files that exist: the training script's docstring, the README, the docs and the recipe
    headers."""
    import azr_trl.launch

    texts = {"azr_trl/launch.py": azr_trl.launch.__doc__, "README.md": (ROOT / "README.md").read_text()}
    texts.update({str(page.relative_to(ROOT)): page.read_text() for page in (ROOT / "docs").rglob("*.md")})
    texts.update({str(r.relative_to(ROOT)): r.read_text() for r in RECIPES})
    pattern = r"(?:recipes|accelerate_configs)/[\w./-]+\.yaml"
    assert re.findall(pattern, azr_trl.launch.__doc__)
    missing = [
        (name, path)
        for name, text in texts.items()
        for path in re.findall(pattern, text)
        if not (ROOT / path).is_file()
    ]
    assert not missing


def test_readme_gives_no_vllm_advice_that_errors():
    readme = "".join(page.read_text() for page in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
    # `trl vllm-serve --data_parallel_size` > 1 errors out on dense models (TRL 1.16's own help text).
    assert "--data_parallel_size 2" not in readme
    lora = (ROOT / "recipes" / "qwen2.5-coder-3b" / "lora_1gpu_24gb.yaml").read_text()
    assert "vllm_gpu_memory_utilization to 0.3" not in lora


###################################
# Pre-flight: environment and seeds
###################################
def test_gpu_recipe_on_a_machine_without_gpu_says_what_to_set(capsys, monkeypatch):
    import azr_trl.launch as train_module

    monkeypatch.setattr(train_module, "has_gpu", lambda: False)
    monkeypatch.setattr("transformers.training_args.is_torch_bf16_gpu_available", lambda: False)
    assert run(["--config", str(PAPER_RECIPES[0])]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "this machine has none" in err and "--use_cpu true --bf16 false" in err


def test_seed_file_with_bad_rows_fails_at_pre_flight(tmp_path, capsys, monkeypatch):
    import azr_trl.launch as train_module

    monkeypatch.setattr(train_module, "main", lambda *a: pytest.fail("must stop before the trainer starts"))
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(
        '{"program": "def f(a):\\n    return a + 1", "input": "1"}\n'
        "{not json\n"
        '{"program": "def f(a):\\n    return a", "inputs": "1"}\n'
    )
    assert run(["--config", str(DEMO), "--seed_files", str(seeds)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert f"seed_files: {seeds}:2: malformed JSON" in err and "(and 1 more bad rows)" in err


def test_builtin_seed_files_pass_pre_flight():
    _, args, _ = parse_args(["--config", str(DEMO), "--seed_files", "builtin"])
    assert args.seed_files == ["builtin"]


def test_qlora_without_bitsandbytes_fails_at_pre_flight(capsys, monkeypatch):
    import sys

    import azr_trl.launch as train_module

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # importlib.util.find_spec now reports it missing
    monkeypatch.setattr(train_module, "main", lambda *a: pytest.fail("must stop before the model loads"))
    recipe = ROOT / "recipes" / "qwen2.5-coder-7b" / "qlora_1gpu_24gb.yaml"
    assert run(["--config", str(recipe), "--use_cpu", "true", "--bf16", "false"]) == 2
    err = capsys.readouterr().err.strip()
    assert "bitsandbytes" in err and "pip install 'azr-trl[qlora]'" in err and "\n" not in err


def test_a_launch_with_another_process_count_than_the_recipe_is_refused(capsys, monkeypatch):
    """accelerate's configs say num_processes: 8; a recipe written for 2 training processes launched without
    --num_processes would train with 4 times its batch per step."""
    import azr_trl.launch as train_module
    from azr_trl.preflight import check_launch

    monkeypatch.setattr(train_module, "main", lambda *a: pytest.fail("must stop before the trainer starts"))
    recipe = ROOT / "recipes" / "qwen2.5-7b" / "paper_4gpu.yaml"
    cpu = ["--use_cpu", "true", "--bf16", "false"]
    parse = train_module.parse_args

    def parse_under_an_8_process_launch(*args, **kwargs):
        parsed = parse(*args, **kwargs)
        # What `accelerate launch` sets for each process; set after parsing, which would otherwise join a group.
        monkeypatch.setenv("WORLD_SIZE", "8")
        return parsed

    monkeypatch.setattr(train_module, "parse_args", parse_under_an_8_process_launch)
    assert run(["--config", str(recipe), *cpu]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "written for num_training_processes=2 but the launch started 8 processes" in err
    assert "add `--num_processes 2` to `accelerate launch`" in err and "allow_process_count_mismatch: true" in err
    monkeypatch.delenv("WORLD_SIZE")
    # Without a launcher the run is one process: the same refusal.
    script_args, _, _ = parse_args(["--config", str(recipe), *cpu])
    with pytest.raises(RecipeError, match="launch started 1 process:"):
        check_launch(script_args, env={})
    check_launch(script_args, env={"WORLD_SIZE": "2"})  # the recipe's own count passes
    # Those who mean it say so.
    script_args, _, _ = parse_args(["--config", str(recipe), *cpu, "--allow_process_count_mismatch", "true"])
    check_launch(script_args, env={"WORLD_SIZE": "8"})
    # A recipe without num_training_processes (the CPU demo) runs with whatever the launch gives it.
    demo_args, _, _ = parse_args(["--config", str(DEMO)])
    check_launch(demo_args, env={"WORLD_SIZE": "2"})


def test_extras_follow_trl():
    import configparser
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    extras = {
        name: [Requirement(line) for line in value.strip().splitlines() if line and not line.startswith("#")]
        for name, value in cfg["options.extras_require"].items()
    }
    assert any(r.name == "trl" and "vllm" in r.extras for r in extras["vllm"])
    assert any(r.name == "bitsandbytes" for r in extras["qlora"])
    trl_deepspeed = next(
        Requirement(r) for r in requires("trl") if r.startswith("deepspeed") and 'extra == "deepspeed"' in r
    )
    trl_floor = min(s.version for s in trl_deepspeed.specifier if s.operator == ">=")
    for extra in ("deepspeed", "dev"):
        ours = next(r for r in extras[extra] if r.name == "deepspeed")
        floor = min(s.version for s in ours.specifier if s.operator == ">=")
        from packaging.version import Version

        assert Version(floor) >= Version(trl_floor), (extra, floor, trl_floor)
