"""AZRTrainer on CPU: tiny in-code models for the mechanics, the default SmolLM2 for a real self-play step."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from azr_trl import AZRTrainer
from azr_trl.tasks import ROLES, TASK_TYPES

from scripts.tiny_azr_run import length_reward, tiny_config
from tiny import make_tiny_model, make_tiny_tokenizer


SCRIPT = Path(__file__).parent / "scripts" / "tiny_azr_run.py"


def logging_length_reward(completions, log_metric=None, log_extra=None, **kwargs):
    """``length_reward`` that also logs through GRPO's reward-function hooks: a metric and a completions-table column."""
    rewards = length_reward(completions)
    log_metric("user/rows_scored", float(len(rewards)))
    log_extra("user_reward", rewards)
    return rewards


def _train_tiny(output_dir, reward_func=length_reward, **overrides):
    tokenizer = make_tiny_tokenizer()
    model = make_tiny_model(tokenizer)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = AZRTrainer(
        model, args=tiny_config(str(output_dir), **overrides), processing_class=tokenizer, reward_funcs=[reward_func]
    )
    trainer.train()
    trainer.close()
    return trainer, before


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One 2-step run shared by the tests below: checkpoints every step, completions table on."""
    output_dir = tmp_path_factory.mktemp("tiny_run")
    trainer, before = _train_tiny(
        output_dir, logging_length_reward, save_strategy="steps", save_steps=1, log_completions=True
    )
    return output_dir, trainer, before


def test_tiny_model_trains_and_logs_every_task_role(tiny_run):
    _, trainer, before = tiny_run
    history = trainer.state.log_history
    assert trainer.state.global_step == 2
    losses = [row["loss"] for row in history if "loss" in row]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    for name, param in trainer.model.named_parameters():
        assert not torch.equal(before[name], param.detach()), f"{name} did not change"
    logged = history[0]
    for task_type in TASK_TYPES:
        for role in ROLES:
            assert f"azr/{task_type}/{role}/reward_mean" in logged
            assert f"azr/{task_type}/{role}/format_error_rate" in logged
            assert f"azr/{task_type}/{role}/completion_length" in logged
        assert f"azr/{task_type}/propose/valid_rate" in logged
        assert f"azr/buffer/{task_type}/size" in logged
    for phase in ("generate_propose", "generate_solve", "generate_mc", "execute", "logprob", "optimize"):
        assert f"azr/time/{phase}" in logged
    # GRPO's own completion metrics and token count, over the trained rows (2 x 12 per step, prompts included).
    steps = [row for row in history if "loss" in row]
    for row in steps:
        assert 0.0 <= row["completions/clipped_ratio"] <= 1.0
        assert row["completions/min_length"] <= row["completions/mean_length"] <= row["completions/max_length"] <= 12
        assert "completions/mean_terminated_length" in row and row["azr/monte_carlo/padded_tasks"] == 0.0
    assert steps[0]["num_tokens"] < steps[1]["num_tokens"] == trainer.state.num_input_tokens_seen
    assert steps[0]["num_tokens"] > trainer.args.rows_per_device * 12  # the prompts count, not only completions
    # A random model writes no valid task: the buffers hold exactly their zero seeds, still pinned.
    for task_type in TASK_TYPES:
        assert trainer.buffer.size(task_type) == 1
        assert trainer.buffer.tasks(task_type)[0].pinned


def test_completions_table_has_azr_columns(tiny_run):
    import pandas as pd

    output_dir, trainer, _ = tiny_run
    files = sorted((output_dir / "completions").glob("*.parquet"))
    assert len(files) == 2
    table = pd.read_parquet(files[-1])
    assert {"task_type", "role", "verdict", "advantage", "azr_propose_reward", "azr_solve_reward"} <= set(
        table.columns
    )
    assert set(table["role"]) == {"propose", "solve"}
    assert set(table["task_type"]) == set(TASK_TYPES)
    assert len(table) == trainer.args.rows_per_device
    # What a user reward function logs through `log_extra`/`log_metric` reaches the table and the metrics, each step.
    assert table["user_reward"].notna().all()
    assert table["user_reward"].tolist() == pytest.approx(table["logging_length_reward"].tolist(), abs=1e-6)
    rows_scored = [row["user/rows_scored"] for row in trainer.state.log_history if "user/rows_scored" in row]
    assert rows_scored == [trainer.args.rows_per_device] * 2
    assert not trainer._pending_metrics and not trainer._pending_extra_logs


def test_checkpoint_holds_the_buffer_and_resume_restores_it(tiny_run):
    output_dir, trainer, _ = tiny_run
    saved = json.loads((output_dir / "checkpoint-1" / "azr_buffer.json").read_text())
    tokenizer = make_tiny_tokenizer()
    resumed = AZRTrainer(
        make_tiny_model(tokenizer),
        args=tiny_config(str(output_dir / "resumed"), max_steps=1),
        processing_class=tokenizer,
        reward_funcs=[length_reward],
    )
    assert resumed.buffer.state_dict() != saved  # a fresh buffer (step 0) differs from the saved one
    resumed.load_buffer(str(output_dir / "checkpoint-1"))
    assert resumed.buffer.state_dict() == saved
    resumed.close()


def test_lora_changes_adapter_only(tmp_path):
    from peft import LoraConfig

    tokenizer = make_tiny_tokenizer()
    model = make_tiny_model(tokenizer)
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    config = tiny_config(str(tmp_path), max_steps=1)  # LoRA: small weights move, the base stays put
    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = AZRTrainer(
        model, args=config, processing_class=tokenizer, reward_funcs=[length_reward], peft_config=peft_config
    )
    lora_before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_" in n}
    trainer.train()
    trainer.close()
    changed = [n for n, p in trainer.model.named_parameters() if "lora_B" in n and not torch.equal(lora_before[n], p)]
    assert changed, "no LoRA weight changed"
    for name, param in trainer.model.named_parameters():
        if "lora_" in name:
            continue
        original = name.replace("base_model.model.", "").replace(".base_layer", "")
        torch.testing.assert_close(param.detach(), base[original])


@pytest.mark.slow
def test_sigkill_then_resume_from_last_checkpoint(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = [sys.executable, str(SCRIPT), str(tmp_path), "--max-steps", "4", "--save-steps", "1"]
    proc = subprocess.Popen(run, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marker = tmp_path / "checkpoint-2" / "azr_buffer.json"
    deadline = time.time() + 240
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert marker.exists(), proc.stderr.read().decode()[-3000:] if proc.poll() is not None else "no checkpoint"
    time.sleep(0.5)  # let the checkpoint finish writing, then kill mid-run
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    checkpoints = sorted(tmp_path.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    last = checkpoints[-1]
    saved_buffer = json.loads((last / "azr_buffer.json").read_text())
    result = subprocess.run([*run, "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "rank0.json").read_text())
    assert report["global_step"] == 4
    # Tasks present at the checkpoint survive the kill (the buffer only grows or evicts the oldest).
    for task_type, tasks in saved_buffer["tasks"].items():
        resumed_keys = {json.dumps(t, sort_keys=True) for t in report["buffer"]["tasks"][task_type]}
        assert all(json.dumps(t, sort_keys=True) in resumed_keys for t in tasks)


@pytest.mark.slow
@pytest.mark.distributed
def test_two_ranks_end_identical(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--nproc_per_node", "2", "--master_port", "29533", str(SCRIPT), str(tmp_path)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    rank1 = json.loads((tmp_path / "rank1.json").read_text())
    assert rank0["world_size"] == 2
    assert rank0["checksum"] == rank1["checksum"]
    assert rank0["buffer"] == rank1["buffer"]


GOOD_PROPOSAL = """<think>A running maximum.</think>
<answer>
```python
def f(nums):
    best, out = None, []
    for x in nums:
        best = x if best is None or x > best else best
        out.append(best)
    return out
```
```input
[3, 1, 4, 1, 5]
```
</answer>"""

BANNED_PROPOSAL = """<answer>
```python
import time
def f(x):
    return time.time() + x
```
```input
1
```
</answer>"""

INDUCTION_PROPOSAL = """<answer>
```input
'ab'
```
```input
'xyz'
```
```input
''
```
```input
'q'
```
```message
Return the string reversed.
```
</answer>"""


def test_validation_phase_uses_the_sandbox_and_feeds_the_buffer(tmp_path):
    """Proposals a real model might write go through the trainer's validation phase and the buffer update."""
    tokenizer = make_tiny_tokenizer()
    trainer = AZRTrainer(
        make_tiny_model(tokenizer),
        args=tiny_config(str(tmp_path), induction_num_inputs=4),
        processing_class=tokenizer,
        reward_funcs=[length_reward],
    )
    reverse = trainer.buffer.tasks("deduction")[0].__class__(
        task_type="deduction", program="def f(s):\n    return s[::-1]", input="'ab'", output="'ba'"
    )
    completions = [GOOD_PROPOSAL, BANNED_PROPOSAL, "no answer at all", INDUCTION_PROPOSAL]
    types = ["deduction", "abduction", "deduction", "induction"]
    refs = [[], [], [], [reverse]]
    proposals = [
        trainer.specs[t].parse_proposal(c, r, require_think=False)
        for t, c, r in zip(types, completions, refs, strict=True)
    ]
    valid, verdicts = trainer._validate(proposals, types)
    assert verdicts[0] == "ok" and valid[0].output == "[3, 3, 4, 4, 5]"
    assert verdicts[1] == "banned_import" and valid[1] is None
    assert verdicts[2] == "missing_answer" and valid[2] is None
    assert verdicts[3] == "ok" and valid[3].outputs == ["'ba'", "'zyx'", "''", "'q'"]
    assert trainer._executor_time.seconds["execute"] > 0
    # Monte-Carlo learnability: n sampled rollouts per valid proposal, verified in the sandbox; None for invalid ones.
    generation_temperature = trainer.generation_config.temperature
    trainer.args.mc_temperature = 0.7
    rates = trainer._monte_carlo_solve_rates(valid)
    assert rates[1] is None and rates[2] is None
    assert all(rates[i] in {0.0, 0.5, 1.0} for i in (0, 3))  # 2 rollouts each
    assert trainer.generation_config.temperature == generation_temperature  # restored after the MC call
    # keep_badly_formatted_tasks (preset reference): a valid task of a proposal with broken tags is validated and
    # buffered, but spends no Monte-Carlo rollouts (its proposer gets the format reward anyway).
    unclosed_think = GOOD_PROPOSAL.replace("</think>", "")
    assert trainer.specs["deduction"].parse_proposal(unclosed_think, [], require_think=True).candidate is None
    trainer.specs["deduction"].keep_badly_formatted_tasks = True
    broken = trainer.specs["deduction"].parse_proposal(unclosed_think, [], require_think=True)
    assert (broken.format_ok, broken.error) == (False, "missing_think")
    kept, kept_verdicts = trainer._validate([proposals[0], broken], ["deduction", "deduction"])
    assert kept_verdicts == ["ok", "ok"] and kept[1].output == valid[0].output
    kept_rates = trainer._monte_carlo_solve_rates(kept, [True, False])
    assert kept_rates[0] in {0.0, 0.5, 1.0} and kept_rates[1] is None
    before = {t: trainer.buffer.size(t) for t in TASK_TYPES}
    trainer.buffer.add([t for t in valid if t is not None], step=1)
    assert trainer.buffer.size("deduction") == before["deduction"] + 1
    assert trainer.buffer.size("induction") == before["induction"] + 1
    # Solve prompts built from the new tasks verify against the executor's gold outputs.
    spec = trainer.specs["deduction"]
    right = spec.parse_answer("<answer>\n```output\n[3, 3, 4, 4, 5]\n```\n</answer>", require_think=False)
    wrong = spec.parse_answer("<answer>\n```output\n[3, 1, 4, 1, 5]\n```\n</answer>", require_think=False)
    assert trainer._verify(["deduction", "deduction"], [valid[0], valid[0]], [right, wrong]) == [True, False]
    trainer.close()


@pytest.mark.slow
def test_default_model_self_play_steps(tmp_path, default_model_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = tiny_config(
        str(tmp_path),
        propose_per_type=1,
        solve_per_type=1,
        per_device_train_batch_size=3,
        max_completion_length=24,
        learning_rate=1e-5,
        log_completions=True,
        seed_files=["builtin"],
    )
    trainer = AZRTrainer(
        AutoModelForCausalLM.from_pretrained(default_model_path),
        args=config,
        processing_class=AutoTokenizer.from_pretrained(default_model_path),
    )
    assert trainer.prompt_format == "chat"  # SmolLM2 is an instruct model with a chat template
    seeded = {t: trainer.buffer.size(t) for t in TASK_TYPES}
    assert seeded["deduction"] > 1  # the built-in seed files were re-validated and loaded
    trainer.train()
    trainer.close()
    assert trainer.state.global_step == 2
    for row in [r for r in trainer.state.log_history if "loss" in r]:
        assert math.isfinite(row["loss"])
        for task_type in TASK_TYPES:
            for role in ROLES:
                assert math.isfinite(row[f"azr/{task_type}/{role}/reward_mean"])
            verdicts = [k for k in row if k.startswith(f"azr/{task_type}/propose/verdict/")]
            assert sum(row[k] for k in verdicts) == pytest.approx(1.0)
    for task_type in TASK_TYPES:
        assert trainer.buffer.size(task_type) >= seeded[task_type]
        assert trainer.buffer.stats()[f"azr/buffer/{task_type}/size"] == trainer.buffer.size(task_type)


def test_wandb_offline_metrics_and_model_card(tmp_path, monkeypatch):
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    trainer, _ = _train_tiny(tmp_path / "out", max_steps=1, report_to=["wandb"], log_completions=True)
    wandb.finish()
    runs = list(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 1, "wandb wrote no offline run"
    records = runs[0].read_bytes()  # protobuf records: metric names are stored as UTF-8
    for task_type in TASK_TYPES:
        assert f"azr/{task_type}/solve/reward_mean".encode() in records
    assert b"completions" in records  # the completions table
    trainer.create_model_card(model_name="azr-tiny")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "2505.03335" in card and "Absolute Zero" in card and "azr" in card
