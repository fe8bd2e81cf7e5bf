"""`azr-trl train`: the training script's tokenizer options, and one real step of the shrunken demo via the CLI."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from azr_trl.launch import QWEN3_THINK_TOKENS, AZRScriptArguments, get_tokenizer, remove_added_tokens, run

from tiny import make_tiny_tokenizer, save_tiny_model


ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "recipes" / "smollm2-135m" / "cpu_demo.yaml"

# The demo recipe shrunk to one step with one task per type and role: 6 trained rows, short completions.
ONE_STEP = [
    "--max_steps", "1",
    "--propose_per_type", "1",
    "--solve_per_type", "1",
    "--per_device_train_batch_size", "3",
    "--mc_rollouts", "2",
    "--num_references", "1",
    "--max_completion_length", "24",
    "--save_steps", "1",
]  # fmt: skip


# The same step on a tiny in-code model (seconds instead of a minute).
TINY_ONE_STEP = [*ONE_STEP, "--max_completion_length", "12", "--save_strategy", "no"]


def test_remove_qwen3_think_tokens():
    tokenizer = make_tiny_tokenizer()
    # Qwen3 registers <think>/</think> as added (non-special) tokens.
    tokenizer.add_tokens(list(QWEN3_THINK_TOKENS))
    assert len(tokenizer("<think>hi</think>")["input_ids"]) == 4
    fixed = remove_added_tokens(tokenizer, QWEN3_THINK_TOKENS)
    ids = fixed("<think>hi</think>")["input_ids"]
    assert len(ids) == len("<think>hi</think>")  # one token per character, like any other text
    assert fixed.decode(ids) == "<think>hi</think>"
    assert not set(QWEN3_THINK_TOKENS) & set(fixed.get_added_vocab())
    # Everything else is untouched.
    assert fixed.eos_token == tokenizer.eos_token and fixed.pad_token == tokenizer.pad_token
    assert fixed.chat_template == tokenizer.chat_template


def test_chat_template_override_from_file_and_string(tmp_path):
    from trl import ModelConfig

    from azr_trl import AZRConfig

    tokenizer = make_tiny_tokenizer()
    tokenizer.save_pretrained(tmp_path / "tok")
    template = "{% for m in messages %}[{{ m['content'] }}]{% endfor %}"
    (tmp_path / "t.jinja").write_text(template)
    args = AZRConfig(
        output_dir=str(tmp_path / "out"), max_steps=1, use_cpu=True, report_to="none", activation_checkpointing=False
    )
    model_args = ModelConfig(model_name_or_path=str(tmp_path / "tok"))
    for value in (str(tmp_path / "t.jinja"), template):
        loaded = get_tokenizer(str(tmp_path / "tok"), AZRScriptArguments(chat_template=value), model_args, args)
        rendered = loaded.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False)
        assert rendered == "[x]"


def test_lora_run_saves_adapter_and_merged_model(tmp_path):
    """use_peft from the recipe builds the LoRA; merge_adapter_on_save writes base + adapter as one model."""
    from transformers import AutoModelForCausalLM

    save_tiny_model(tmp_path / "model")
    out = tmp_path / "run"
    argv = ["--config", str(DEMO), "--model_name_or_path", str(tmp_path / "model"), "--output_dir", str(out)]
    lora = ["--use_peft", "true", "--lora_r", "4", "--lora_target_modules", "q_proj", "v_proj"]
    assert run([*argv, *TINY_ONE_STEP, *lora, "--merge_adapter_on_save", "true", "--summary", "false"]) == 0
    assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()
    # The merged model lives beside the run directory, never inside it (the run directory is the adapter repo).
    assert not (out / "merged").exists()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "run-merged")
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert (tmp_path / "run-merged" / "tokenizer.json").is_file()


@pytest.mark.slow
def test_cli_trains_one_step_of_the_demo_on_the_default_model(tmp_path, azr_trl_cli, default_model_path):
    out = tmp_path / "run"
    start = time.perf_counter()
    result = subprocess.run(
        [str(azr_trl_cli), "train", "--config", str(DEMO), *ONE_STEP, "--output_dir", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    # The live line and the end-of-run summary.
    assert "step 1/1 |" in result.stdout + result.stderr
    assert "AZR run summary" in result.stdout
    assert f"Checkpoint: {out / 'checkpoint-1'}" in result.stdout
    # What the run leaves behind.
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert (out / "checkpoint-1" / "azr_buffer.json").is_file()
    assert (out / "README.md").is_file()  # the model card
    assert sorted((out / "completions").glob("*.parquet"))
    # `azr-trl report` on the real run directory.
    report = subprocess.run([str(azr_trl_cli), "report", str(out)], capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    assert (out / "report" / "report.html").is_file()
    assert (out / "report" / "rewards.png").is_file()
    print(f"one CLI demo step: {elapsed:.0f} s")
