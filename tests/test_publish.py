"""Pushing a LoRA run: the adapter repository gets the run directory without the merged model, and the merged model
goes to its own repository with its own card. The Hub is replaced only at the network boundary: `HfApi.create_repo`
and `HfApi.upload_folder` (which transformers' `push_to_hub` and ours both call), the latter listing the files that
huggingface_hub would send, with the caller's ignore patterns and its own defaults."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from huggingface_hub import CommitInfo, HfApi, RepoUrl
from huggingface_hub.hf_api import DEFAULT_IGNORE_PATTERNS as DEFAULT_IGNORE
from huggingface_hub.utils import filter_repo_objects

from azr_trl.launch import run

from tiny import save_tiny_model


DEMO = Path(__file__).resolve().parent.parent / "recipes" / "smollm2-135m" / "cpu_demo.yaml"
# One step of the demo recipe on the tiny model: 6 short rows, no checkpoint.
TINY_ONE_STEP = [
    "--max_steps", "1", "--propose_per_type", "1", "--solve_per_type", "1", "--per_device_train_batch_size", "3",
    "--mc_rollouts", "2", "--num_references", "1", "--max_completion_length", "12", "--save_strategy", "no",
]  # fmt: skip


def test_push_uploads_the_adapter_and_the_merged_model_to_separate_repos(tmp_path, monkeypatch):
    uploads: dict[str, list[str]] = {}
    cards: dict[str, str] = {}
    repos: list[str] = []

    def create_repo(self, repo_id, **kwargs):
        repos.append(repo_id)
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, allow_patterns=None, ignore_patterns=None, **kwargs):
        # The files huggingface_hub would send: the folder, filtered by the caller's and its default patterns.
        ignore = [ignore_patterns] if isinstance(ignore_patterns, str) else list(ignore_patterns or [])
        files = [p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*") if p.is_file()]
        kept = list(filter_repo_objects(files, allow_patterns=allow_patterns, ignore_patterns=ignore + DEFAULT_IGNORE))
        uploads.setdefault(repo_id, []).extend(kept)
        if "README.md" in kept:
            cards[repo_id] = (Path(folder_path) / "README.md").read_text()
            yaml.safe_load(cards[repo_id].split("---\n")[1])  # the card's metadata is valid YAML
        return CommitInfo(
            commit_url=f"https://huggingface.co/{repo_id}/commit/{'0' * 40}",
            commit_message=kwargs.get("commit_message", ""),
            commit_description="",
            oid="0" * 40,
        )

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)

    save_tiny_model(tmp_path / "model")
    out = tmp_path / "run"
    argv = [
        "--config", str(DEMO), "--model_name_or_path", str(tmp_path / "model"), "--output_dir", str(out),
        *TINY_ONE_STEP,
        "--use_peft", "true", "--lora_r", "4", "--lora_target_modules", "q_proj", "v_proj",
        "--merge_adapter_on_save", "true", "--summary", "false",
        "--push_to_hub", "true", "--hub_model_id", "someone/tiny-azr", "--hub_strategy", "end",
    ]  # fmt: skip
    assert run(argv) == 0

    adapter_files = set(uploads["someone/tiny-azr"])
    assert "adapter_model.safetensors" in adapter_files and "README.md" in adapter_files
    assert "azr_prompt_format.json" in adapter_files
    # Nothing of the merged bf16 model in the adapter repository.
    assert not any("merged" in f or f == "model.safetensors" for f in adapter_files), adapter_files

    assert "## Prompt format" in cards["someone/tiny-azr"] and "prompt_format: chat" in cards["someone/tiny-azr"]

    merged_files = set(uploads["someone/tiny-azr-merged"])
    assert {
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "README.md",
        "azr_prompt_format.json",
    } <= merged_files
    assert not any("adapter" in f for f in merged_files)
    assert "someone/tiny-azr-merged" in repos
    card = cards["someone/tiny-azr-merged"]
    assert "base_model:" in card and str(tmp_path / "model") in card
    assert "[someone/tiny-azr](https://huggingface.co/someone/tiny-azr)" in card
    assert "prompt_format: chat" in card
    saved = json.loads((tmp_path / "run-merged" / "azr_prompt_format.json").read_text())
    assert saved == {"prompt_format": "chat", "require_think": False}
