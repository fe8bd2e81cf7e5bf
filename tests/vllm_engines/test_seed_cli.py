"""`azr-trl seed --backend vllm` on a real vLLM CPU engine and the default model, through evaluation's shared
`VLLMGenerator`: every round is sampled by the engine, and no prompt exceeds the engine's `max_model_len` minus
`--max-new-tokens` (a reference that cannot fit is left out of the prompt instead of making the engine refuse it).

The engine gets `enforce_eager=True` (it skips minutes of torch.compile on CPU) and a small `max_model_len`.
"""

from __future__ import annotations

import json

import pytest

from azr_trl.cli.main import main
from azr_trl.generation.generators import VLLMGenerator, prompt_length
from azr_trl.tasks import prompt_text

from engine import LONG_OUTPUT_PROGRAM, MAX_MODEL_LEN, SEED_ROWS


@pytest.fixture(autouse=True)
def eager_small_engine(monkeypatch):
    import vllm

    engine = vllm.LLM

    def small_engine(**kwargs):
        return engine(**{**kwargs, "enforce_eager": True, "max_model_len": MAX_MODEL_LEN})

    monkeypatch.setattr(vllm, "LLM", small_engine)


def test_seed_cli_samples_through_the_vllm_generator_within_the_engine_limit(tmp_path, monkeypatch, capsys):
    calls = []
    generate = VLLMGenerator.generate

    def record(self, prompts, settings, progress=True, desc="generate"):
        completions = generate(self, prompts, settings, progress=progress, desc=desc)
        calls.append(([prompt_length(self.tokenizer, prompt) for prompt in prompts], list(prompts), completions))
        assert self.token_limit() == MAX_MODEL_LEN  # the engine's own limit
        return completions

    monkeypatch.setattr(VLLMGenerator, "generate", record)
    out = tmp_path / "seeds.jsonl"
    out.write_text("".join(json.dumps(row) + "\n" for row in SEED_ROWS))  # the first row's output alone overflows
    args = [
        "seed", "--backend", "vllm", "--model", "default", "--output", str(out), "--num-tasks", "5",
        "--batch-size", "2", "--num-references", "3", "--max-new-tokens", "32", "--max-rounds", "2",
        "--no-progress", "--workers", "1", "--timeout", "3",
    ]  # fmt: skip
    status = main(args)
    err = capsys.readouterr().err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert status == (0 if len(rows) == 5 else 1)
    assert f"{out}: {len(rows)} seed tasks (+{len(rows) - 3}) in " in err and "cannot load model" not in err
    assert 1 <= len(calls) <= 2
    for lengths, prompts, completions in calls:
        assert len(prompts) == 2 and len(completions) == 2 and all(len(samples) == 1 for samples in completions)
        assert all(length <= MAX_MODEL_LEN - 32 for length in lengths)
        assert not any(LONG_OUTPUT_PROGRAM in prompt_text(prompt) for prompt in prompts)
    # The references that fit are still shown.
    ordinary = [row["program"] for row in SEED_ROWS if row["program"] != LONG_OUTPUT_PROGRAM]
    assert any(program in prompt_text(prompt) for _, prompts, _ in calls for prompt in prompts for program in ordinary)
