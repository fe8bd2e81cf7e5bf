"""Helpers of the real-engine tests: the AZR settings they share, a `trl vllm-serve` process, and a record of what
each generation request sent to the engine and what the engine sent back.

The recorders wrap the real call (`LLM.generate` in colocate mode, `VLLMClient.generate` in server mode) and pass it
through unchanged; the sampling settings are then checked from the engine's own answers (completion counts, lengths,
and its log-probs, which `processed_logprobs` makes temperature-scaled).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import torch

from azr_trl import AZRConfig

from vllm_stand_in import free_port


MAX_MODEL_LEN = 1024
MAX_COMPLETION = 32
TEMPERATURE = 0.7
MC_TEMPERATURE = 1.3
MC_ROLLOUTS = 3

# A deduction/abduction seed task whose output alone (1,500 numbers: thousands of tokens, within the executor's
# 10,000-character output limit) cannot fit any prompt under MAX_MODEL_LEN, beside two ordinary ones.
LONG_OUTPUT_PROGRAM = "def f(n):\n    return list(range(n))\n"
SEED_ROWS = [
    {"program": LONG_OUTPUT_PROGRAM, "input": "1500", "output": repr(list(range(1500)))},
    {"program": "def f(text):\n    return text[::-1]\n", "input": "'racecar level'", "output": "'level racecar'"},
    {"program": "def f(n):\n    return n * (n + 1) // 2\n", "input": "10", "output": "55"},
]


def azr_config(output_dir, **overrides) -> AZRConfig:
    """Small AZR steps on the default model: deduction, 1 propose + 1 solve row, 32-token completions."""
    settings = dict(
        output_dir=str(output_dir),
        max_steps=2,
        task_types=["deduction"],
        propose_per_type=1,
        solve_per_type=1,
        per_device_train_batch_size=2,
        num_references=1,
        mc_rollouts=MC_ROLLOUTS,
        mc_temperature=MC_TEMPERATURE,
        temperature=TEMPERATURE,
        max_completion_length=MAX_COMPLETION,
        # Large enough that one optimizer step moves bfloat16 weights (the engine's dtype); not a training setting.
        learning_rate=1e-3,
        gradient_checkpointing=False,
        executor_timeout=5.0,
        executor_workers=1,
        use_cpu=True,
        bf16=False,
        use_vllm=True,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        seed=0,
    )
    settings.update(overrides)
    return AZRConfig(**settings)


def write_seed_file(folder: Path) -> Path:
    path = folder / "seeds_with_long_output.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in SEED_ROWS))
    return path


@dataclass
class EngineCall:
    """One generation request: the settings the engine received and what it returned."""

    temperature: float
    n: int
    max_tokens: int
    prompts: list[list[int]]
    completions: list[list[int]]  # n per prompt, prompt-major
    logprobs: list[list[float]] = field(default_factory=list)


def record_colocate_calls(llm, calls: list[EngineCall]) -> None:
    """Record every `llm.generate` call (colocate mode) into ``calls``; the call itself runs unchanged."""
    generate = llm.generate

    def recording_generate(prompts, sampling_params=None, **kwargs):
        outputs = generate(prompts, sampling_params=sampling_params, **kwargs)
        completions = [list(o.token_ids) for out in outputs for o in out.outputs]
        logprobs = [
            [entry[token].logprob for token, entry in zip(o.token_ids, o.logprobs, strict=True)]
            for out in outputs
            for o in out.outputs
        ]
        calls.append(
            EngineCall(
                temperature=sampling_params.temperature,
                n=sampling_params.n,
                max_tokens=sampling_params.max_tokens,
                prompts=[list(out.prompt_token_ids) for out in outputs],
                completions=completions,
                logprobs=logprobs,
            )
        )
        return outputs

    llm.generate = recording_generate


def record_server_calls(monkeypatch, calls: list[EngineCall], events: list[str] | None = None) -> None:
    """Record every `VLLMClient.generate` call (server mode) into ``calls`` (and a "generate" entry into ``events``
    when it succeeds); the HTTP request runs unchanged."""
    from trl.generation.vllm_client import VLLMClient

    generate = VLLMClient.generate

    def recording_generate(self, prompts, *args, **kwargs):
        output = generate(self, prompts, *args, **kwargs)
        calls.append(
            EngineCall(
                temperature=kwargs["temperature"],
                n=kwargs["n"],
                max_tokens=kwargs["max_tokens"],
                prompts=[list(p) for p in prompts],
                completions=output["completion_ids"],
                logprobs=[[lp[0] for lp in seq] for seq in output["logprobs"]],
            )
        )
        if events is not None:
            events.append("generate")
        return output

    monkeypatch.setattr(VLLMClient, "generate", recording_generate)


@torch.no_grad()
def logprob_gap(model, call: EngineCall, temperature: float, max_sequences: int = 4) -> float:
    """Mean |engine log-prob - log_softmax(logits / temperature)| over the sampled tokens of a few completions.

    ``model`` must hold the weights the engine generated with. The engine's log-probs are processed (temperature
    applied), so the gap is small only at the temperature the engine really sampled with.
    """
    gaps = []
    for index, (completion, logprobs) in enumerate(zip(call.completions, call.logprobs, strict=True)):
        if index >= max_sequences or not completion:
            break
        prompt = call.prompts[index // call.n]
        ids = torch.tensor([prompt + completion])
        logits = model(ids).logits[0, len(prompt) - 1 : -1].float()
        reference = torch.log_softmax(logits / temperature, dim=-1).gather(1, torch.tensor(completion)[:, None])[:, 0]
        gaps.append((reference - torch.tensor(logprobs)).abs().mean().item())
    return sum(gaps) / len(gaps)


def monte_carlo_call(trainer, calls: list[EngineCall]) -> EngineCall:
    """Runs the trainer's Monte-Carlo phase on one buffer task, through the engine; returns the request it made."""
    task = trainer.buffer.sample_solve("deduction", 1, rng=random.Random(0))[0]
    before = len(calls)
    rates = trainer._monte_carlo_solve_rates([task])
    assert len(rates) == 1 and 0.0 <= rates[0] <= 1.0
    assert len(calls) == before + 1
    return calls[-1]


def check_sampling_settings(step_calls: list[EngineCall], mc_call: EngineCall, model) -> None:
    """Propose and solve requests at TEMPERATURE, one completion per prompt; the Monte-Carlo request at MC_TEMPERATURE
    with MC_ROLLOUTS completions for its one task; every completion within MAX_COMPLETION tokens.

    ``model`` holds the weights the engine generated ``step_calls[0]`` and ``mc_call`` with."""
    for call in [*step_calls, mc_call]:
        assert call.max_tokens == MAX_COMPLETION
        assert all(0 < len(c) <= MAX_COMPLETION for c in call.completions)
        assert len(call.completions) == len(call.prompts) * call.n
    assert any(len(c) == MAX_COMPLETION for call in step_calls for c in call.completions)  # the cap stops them
    assert all(call.temperature == TEMPERATURE and call.n == 1 for call in step_calls)
    assert mc_call.temperature == MC_TEMPERATURE
    assert len(mc_call.completions) == MC_ROLLOUTS
    # Checked from the engine's own numbers: its log-probs match the model's at the temperature it was asked for,
    # and not at the other one.
    for call, used, other in [(step_calls[0], TEMPERATURE, MC_TEMPERATURE), (mc_call, MC_TEMPERATURE, TEMPERATURE)]:
        at_used, at_other = logprob_gap(model, call, used), logprob_gap(model, call, other)
        assert at_used < 0.15 and at_used < at_other / 2, (used, at_used, other, at_other)


class VLLMServe:
    """A `trl vllm-serve` process on the loopback interface, with its log in a file."""

    def __init__(self, model_dir: Path, log_path: Path, port: int | None = None):
        self.model_dir = model_dir
        self.log_path = log_path
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> VLLMServe:
        trl = Path(sys.executable).parent / "trl"
        command = [
            str(trl), "vllm-serve", "--model", str(self.model_dir), "--host", "127.0.0.1", "--port", str(self.port),
            "--max_model_len", str(MAX_MODEL_LEN), "--enforce_eager", "true",
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        return self

    def wait_healthy(self, timeout: float = 300) -> VLLMServe:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"trl vllm-serve exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                if requests.get(f"{self.base_url}/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(1)
        raise TimeoutError(f"trl vllm-serve not healthy after {timeout} s:\n{self.log()[-3000:]}")

    def kill(self) -> None:
        """Kill the server and its engine process (the whole process group), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=60)
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
