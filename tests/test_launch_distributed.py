"""`accelerate launch` with the shipped ZeRO-3 config: two CPU ranks run one real step and agree on the buffer."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "recipes" / "smollm2-135m" / "cpu_demo.yaml"


@pytest.mark.slow
@pytest.mark.distributed
def test_zero3_two_cpu_ranks_one_step(tmp_path, default_model_path):
    pytest.importorskip("deepspeed")
    out = tmp_path / "run"
    accelerate = Path(sys.executable).parent / "accelerate"
    command = [
        str(accelerate), "launch",
        "--config_file", str(ROOT / "accelerate_configs" / "zero3.yaml"),
        "--num_processes", "2",
        "--mixed_precision", "no",  # the config says bf16 (GPU); CPU ranks train in fp32
        "-m", "azr_trl.launch",
        "--config", str(DEMO),
        # The smallest real step: one task type, one proposal and one solve per rank, 16-token completions.
        "--max_steps", "1",
        "--task_types", "deduction",
        "--propose_per_type", "1",
        "--solve_per_type", "1",
        "--per_device_train_batch_size", "2",
        "--mc_rollouts", "2",
        "--num_references", "1",
        "--max_completion_length", "16",
        "--save_strategy", "no",
        "--summary", "false",
        # use_cpu would make accelerate fall back to plain MULTI_CPU (no DeepSpeed). Without it, accelerate finds no
        # GPU backend on its own; an explicit gloo backend lets DeepSpeed initialise its process group on CPU.
        "--use_cpu", "false",
        "--ddp_backend", "gloo",
        "--bf16", "false",
        "--output_dir", str(out),
    ]  # fmt: skip
    # DS_ACCELERATOR=cpu: DeepSpeed's CPU accelerator (gloo + its shared-memory op); one thread per rank on 2 cores.
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1", "ACCELERATE_LOG_LEVEL": "info"}
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    elapsed = time.perf_counter() - start
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-8000:]
    assert "distributed: DEEPSPEED, 2 processes" in log
    ranks = re.findall(r"\[rank (\d)\] azr buffer sha256=([0-9a-f]+), zero3 shard ([\d.]+)M of ([\d.]+)M", log)
    assert sorted(r[0] for r in ranks) == ["0", "1"], log[-4000:]
    # Both ranks end with the same buffer (tasks, step counters and sampler state).
    assert ranks[0][1] == ranks[1][1]
    # Real ZeRO-3: each rank holds about half of the 134.5M parameters.
    for _, _, local, total in ranks:
        assert float(total) > 100 and float(local) < 0.6 * float(total)
    # save_model gathered the shards into one consolidated checkpoint.
    assert (out / "model.safetensors").is_file() and (out / "azr_buffer.json").is_file()
    print(f"ZeRO-3 two-rank step: {elapsed:.0f} s")
