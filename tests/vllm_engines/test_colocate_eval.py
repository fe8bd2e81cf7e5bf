"""The in-training evaluation and the Monte-Carlo padding rows on a real colocated vLLM engine (the CPU build), with
the default model. A file of its own: `make test-vllm` runs each engine file in its own process, and a colocated
engine holds its memory until the process ends.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from azr_trl import AZRTrainer

from engine import MAX_COMPLETION, MAX_MODEL_LEN, TEMPERATURE, azr_config, record_colocate_calls


CRUX = Path(__file__).resolve().parent.parent / "data" / "eval" / "cruxeval_tiny.jsonl"
EVAL_TOKENS = 8


@pytest.fixture(autouse=True)
def eager_engine(monkeypatch):
    import trl.generation.vllm_generation as vllm_generation

    monkeypatch.setattr(vllm_generation, "LLM", functools.partial(vllm_generation.LLM, enforce_eager=True))


def test_colocated_engine_evaluates_during_training_and_answers_padding_with_one_token(
    tmp_path, default_model_path, monkeypatch
):
    config = azr_config(
        tmp_path / "out",
        vllm_mode="colocate",
        vllm_max_model_length=MAX_MODEL_LEN,
        max_steps=1,
        eval_benchmarks=["cruxeval_o"],
        eval_benchmark_file=str(CRUX),
        eval_num_items=3,
        eval_steps=1,
        eval_max_new_tokens=EVAL_TOKENS,
    )
    tokenizer = AutoTokenizer.from_pretrained(default_model_path)
    trainer = AZRTrainer(
        AutoModelForCausalLM.from_pretrained(default_model_path), args=config, processing_class=tokenizer
    )
    generation = trainer.vllm_generation
    calls, syncs = [], []
    record_colocate_calls(generation.llm, calls)
    sync_weights = generation.sync_weights

    def recording_sync():
        syncs.append(len(calls))  # how many engine calls came before this sync
        sync_weights()

    generation.sync_weights = recording_sync
    model = trainer.accelerator.unwrap_model(trainer.model)
    monkeypatch.setattr(model, "generate", lambda *a, **k: pytest.fail("evaluation must not use HF generate"))
    try:
        # Padding rows (what a rank with fewer Monte-Carlo tasks adds) reach the engine but cost one token each.
        prompt = trainer.specs["deduction"].propose_prompt([trainer.buffer.tasks("deduction")[0]], "chat")
        _, completion_ids, _, texts = trainer._sample([prompt, prompt], num_generations=2, padding=3)
        (padded,) = calls
        assert len(padded.prompts) == 8 and len(completion_ids) == len(texts) == 2
        assert [len(c) for c in padded.completions[2:]] == [1] * 6
        assert max(len(c) for c in padded.completions[:2]) > 1
        calls.clear()
        syncs.clear()
        trainer.train()
    finally:
        trainer.close()

    assert any("eval/cruxeval_o/accuracy" in row for row in trainer.state.log_history)
    *training, evaluation = calls
    assert (evaluation.temperature, evaluation.max_tokens, len(evaluation.prompts)) == (0.0, EVAL_TOKENS, 3)
    assert all(c.temperature == TEMPERATURE and c.max_tokens == MAX_COMPLETION for c in training)
    # The evaluation ran on the weights of the step just taken: synced after the step's own calls.
    assert syncs[-1] == len(training)
