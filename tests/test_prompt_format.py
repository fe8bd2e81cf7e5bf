"""The training prompt format travels with the model: saved by training, read back by `azr-trl eval` and `azr-trl
seed` as their default (a base model whose tokenizer ships a chat template, trained in r1, is not evaluated in chat)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from azr_trl.cli.main import main
from azr_trl.run_outputs.prompt_format import (
    PROMPT_FORMAT_FILE,
    find_prompt_format,
    save_prompt_format,
    trained_defaults,
)
from azr_trl.tasks.prompts import resolve_prompt_format

from tiny import make_tiny_tokenizer, save_tiny_model


CRUX = Path(__file__).parent / "data" / "eval" / "cruxeval_tiny.jsonl"


@pytest.fixture
def r1_run(tmp_path) -> Path:
    """A run directory trained in r1 with a checkpoint; the tokenizer has a chat template (so `auto` says chat)."""
    run = tmp_path / "run"
    assert make_tiny_tokenizer().chat_template
    for folder in (run, run / "checkpoint-1"):
        save_tiny_model(folder)
    save_prompt_format(run, "r1", True)
    return run


def test_found_in_the_model_folder_or_its_run_directory(r1_run, tmp_path):
    for model in (r1_run, r1_run / "checkpoint-1"):
        saved, where = find_prompt_format(str(model))
        assert saved == {"prompt_format": "r1", "require_think": True}
        assert where == str(r1_run / PROMPT_FORMAT_FILE)
    assert find_prompt_format(str(tmp_path)) is None
    assert find_prompt_format("default") is None
    assert find_prompt_format("someone/not-reachable") is None  # tests are offline: no file, no error


def test_given_options_win_over_the_saved_ones(r1_run):
    assert trained_defaults(str(r1_run), None, None) == ("r1", True)
    assert trained_defaults(str(r1_run), "chat", None) == ("chat", True)
    assert trained_defaults(str(r1_run), None, False) == ("r1", False)
    assert trained_defaults("default", None, None) == ("auto", None)


def test_resolve_prompt_format():
    with_template, without_template = make_tiny_tokenizer(), make_tiny_tokenizer()
    without_template.chat_template = None
    # auto: chat when the tokenizer has a chat template, else r1; a <think> block is required in r1 only.
    assert resolve_prompt_format("auto", None, with_template) == ("chat", False)
    assert resolve_prompt_format("auto", None, without_template) == ("r1", True)
    # An explicit format is kept whatever the tokenizer; an explicit think requirement wins over the format's default.
    assert resolve_prompt_format("r1", None, with_template) == ("r1", True)
    assert resolve_prompt_format("chat", None, without_template) == ("chat", False)
    assert resolve_prompt_format("chat", True, with_template) == ("chat", True)
    assert resolve_prompt_format("auto", False, without_template) == ("r1", False)
    with pytest.raises(ValueError, match="'markdown'"):
        resolve_prompt_format("markdown", None, with_template)


def test_a_malformed_file_is_named(tmp_path):
    (tmp_path / PROMPT_FORMAT_FILE).write_text(json.dumps({"prompt_format": "html"}))
    with pytest.raises(ValueError, match=PROMPT_FORMAT_FILE):
        find_prompt_format(str(tmp_path))


def test_eval_defaults_to_the_trained_format(r1_run, tmp_path):
    out = tmp_path / "results.json"
    argv = ["eval", "--model", str(r1_run / "checkpoint-1"), "--benchmark", "cruxeval_o", "--dataset", str(CRUX),
            "--limit", "1", "--max-new-tokens", "2", "--no-progress", "--workers", "1", "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    results = json.loads(out.read_text())
    assert results["settings"]["prompt_format"] == "r1"
    assert results["settings"]["require_think"] is True
    prompt = results["benchmarks"]["cruxeval_o"]["records"][0]["prompt"]
    assert "<|im_start|>" not in prompt  # not rendered through the chat template
    # An explicit choice still wins.
    assert main([*argv, "--prompt-format", "chat"]) == 0
    assert json.loads(out.read_text())["settings"]["prompt_format"] == "chat"


def test_seed_defaults_to_the_trained_format(r1_run, tmp_path, monkeypatch):
    import azr_trl.seeding.generation
    from azr_trl.tasks.task import zero_triplet

    used = {}

    def record(generate, executor, output, num_tasks, **kwargs):
        used.update(fmt=kwargs["fmt"], require_think=kwargs["require_think"])
        done = azr_trl.seeding.generation.SeedPhase("seed tasks", Path(output), num_tasks, existing=num_tasks)
        done.tasks = [zero_triplet("deduction")] * num_tasks  # the target reached: exit status 0
        return azr_trl.seeding.generation.SeedReport(done)

    monkeypatch.setattr(azr_trl.seeding.generation, "generate_seed_tasks", record)
    argv = ["seed", "--model", str(r1_run), "--output", str(tmp_path / "seeds.jsonl"), "--num-tasks", "1",
            "--workers", "1", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert used == {"fmt": "r1", "require_think": True}
    assert main([*argv, "--prompt-format", "chat", "--no-require-think"]) == 0
    assert used == {"fmt": "chat", "require_think": False}
