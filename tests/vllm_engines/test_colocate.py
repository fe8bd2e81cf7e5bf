"""AZR training steps with `use_vllm=True, vllm_mode="colocate"` on a real vLLM CPU engine and the default model.

Generation goes through TRL's own `VLLMGeneration`, and so does the decision to sync and the tensors sent; on vLLM's
CPU build the engine-side load goes through vLLM's `reload_weights` (azr_trl/generation/vllm_cpu.py explains why). Its `LLM` is
given `enforce_eager=True`, which TRL does not expose: it skips minutes of torch.compile on CPU.

The engine's weights are read through the engine itself: the log-probs it assigns to a fixed probe text
(`prompt_logprobs`), compared with the training model's at known points of the run (on CPU vLLM repacks linear
weights into kernel formats, so they cannot be read as tensors).
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from azr_trl import AZRTrainer

from engine import (
    MAX_COMPLETION,
    MAX_MODEL_LEN,
    azr_config,
    check_sampling_settings,
    monte_carlo_call,
    record_colocate_calls,
    write_seed_file,
)
from scripts.tiny_azr_run import length_reward


PROBE = "def f(numbers):\n    return sorted(set(numbers))[::-1]\n\nprint(f([3, 1, 3, 2]))\n"


@pytest.fixture(autouse=True)
def eager_engine(monkeypatch):
    import trl.generation.vllm_generation as vllm_generation

    monkeypatch.setattr(vllm_generation, "LLM", functools.partial(vllm_generation.LLM, enforce_eager=True))


def _engine_probe(generate, probe_ids) -> torch.Tensor:
    """Log-probs the engine gives to each probe token after the first."""
    from vllm import SamplingParams

    output = generate([{"prompt_token_ids": probe_ids}], SamplingParams(max_tokens=1, prompt_logprobs=0))[0]
    return torch.tensor(
        [entry[token].logprob for token, entry in zip(probe_ids[1:], output.prompt_logprobs[1:], strict=True)]
    )


@torch.no_grad()
def _model_probe(model, probe_ids) -> torch.Tensor:
    logits = model(torch.tensor([probe_ids])).logits[0, :-1].float()
    return torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(probe_ids[1:])[:, None])[:, 0]


class _Probes(TrainerCallback):
    """At the end of every optimizer step (before the next step syncs): the engine's and the model's probe log-probs."""

    def __init__(self, trainer, generate, probe_ids):
        self.trainer, self.generate, self.probe_ids, self.seen = trainer, generate, probe_ids, []

    def on_step_end(self, args, state, control, **kwargs):
        model = self.trainer.model
        self.seen.append((_engine_probe(self.generate, self.probe_ids), _model_probe(model, self.probe_ids)))


def _gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().mean().item()


def test_colocate_steps_sync_weights_and_sample_as_configured(tmp_path, default_model_path):
    # Two rows per (task type, role): a one-row group's advantage is 0, and the step would not move the weights.
    config = azr_config(
        tmp_path / "out",
        vllm_mode="colocate",
        vllm_max_model_length=MAX_MODEL_LEN,
        propose_per_type=2,
        solve_per_type=2,
        per_device_train_batch_size=4,
    )
    tokenizer = AutoTokenizer.from_pretrained(default_model_path)
    trainer = AZRTrainer(
        AutoModelForCausalLM.from_pretrained(default_model_path),
        args=config,
        processing_class=tokenizer,
        reward_funcs=[length_reward],  # a dense reward: the default model's rows are otherwise all -1, no gradient
    )
    llm = trainer.vllm_generation.llm
    probe_ids = tokenizer(PROBE)["input_ids"]
    probes = _Probes(trainer, functools.partial(llm.generate, use_tqdm=False), probe_ids)
    calls = []
    record_colocate_calls(llm, calls)
    trainer.add_callback(probes)
    base = AutoModelForCausalLM.from_pretrained(default_model_path)
    base_probe = _model_probe(base, probe_ids)
    try:
        mc_call = monte_carlo_call(trainer, calls)  # the first generation: the engine holds the base weights
        calls.clear()
        trainer.train()
    finally:
        trainer.close()

    assert trainer.state.global_step == 2
    assert all(math.isfinite(row["loss"]) for row in trainer.state.log_history if "loss" in row)
    (engine_1, model_1), (engine_2, _) = probes.seen
    # The optimizer step moved the model well beyond the engine's numerical noise.
    moved = _gap(model_1, base_probe)
    # Step 1 generated with the base weights; step 2's sync put the weights of optimizer step 1 into the engine.
    assert _gap(engine_1, base_probe) < moved / 3, (_gap(engine_1, base_probe), moved)
    assert _gap(engine_2, model_1) < moved / 3, (_gap(engine_2, model_1), moved)
    assert _gap(engine_2, engine_1) > moved / 2
    check_sampling_settings(calls[:2], mc_call, base)


def test_colocate_step_completes_with_a_reference_longer_than_the_engine_allows(tmp_path, default_model_path):
    config = azr_config(
        tmp_path / "out",
        vllm_mode="colocate",
        vllm_max_model_length=MAX_MODEL_LEN,
        max_steps=1,
        seed_files=[str(write_seed_file(tmp_path))],
        task_types=["deduction", "abduction"],
        num_references=2,
        propose_per_type=2,
        solve_per_type=2,
        per_device_train_batch_size=2,
    )
    trainer = AZRTrainer(
        AutoModelForCausalLM.from_pretrained(default_model_path),
        args=config,
        processing_class=AutoTokenizer.from_pretrained(default_model_path),
    )
    try:
        trainer.train()
    finally:
        trainer.close()
    assert trainer.state.global_step == 1
    too_long = {k: v for row in trainer.state.log_history for k, v in row.items() if "too_long" in k}
    assert too_long and sum(too_long.values()) > 0, too_long
    # The budget is the colocated engine's max_model_len minus the completion room.
    assert trainer._prompt_token_budget() == MAX_MODEL_LEN - MAX_COMPLETION
