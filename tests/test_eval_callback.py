"""AZREvalCallback during a real (tiny, CPU) GRPOTrainer run: the eval metrics land in the trainer's log history."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from azr_trl.evaluation import AZREvalCallback
from azr_trl.executor import ExecJob, ExecutorConfig

from tiny import make_tiny_model, make_tiny_tokenizer


CRUX = Path(__file__).parent / "data" / "eval" / "cruxeval_tiny.jsonl"


def _length_reward(completions, **kwargs):
    return [len(c[0]["content"]) / 10 for c in completions]


def _grpo_trainer(tmp_path, max_steps: int, callbacks=None) -> GRPOTrainer:
    tokenizer = make_tiny_tokenizer()
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": f"count to {i}"}]} for i in range(6)])
    args = GRPOConfig(
        output_dir=str(tmp_path),
        max_steps=max_steps,
        per_device_train_batch_size=3,
        num_generations=3,
        max_completion_length=8,
        learning_rate=0.1,
        use_cpu=True,
        bf16=False,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        seed=0,
    )
    return GRPOTrainer(
        model=make_tiny_model(tokenizer),
        args=args,
        processing_class=tokenizer,
        reward_funcs=[_length_reward],
        train_dataset=dataset,
        callbacks=callbacks,
    )


def _eval_rows(history: list[dict]) -> list[dict]:
    return [row for row in history if "eval/cruxeval_o/accuracy" in row]


def test_callback_logs_eval_accuracy_every_eval_steps(tmp_path):
    trainer = _grpo_trainer(tmp_path, max_steps=2)
    callback = AZREvalCallback(
        trainer,
        dataset=str(CRUX),
        num_items=3,
        eval_steps=1,
        eval_on_start=True,
        max_new_tokens=8,
        executor_config=ExecutorConfig(workers=1),
    )
    assert [len(items) for items in callback.items.values()] == [3, 3]
    trainer.add_callback(callback)
    trainer.train()

    rows = _eval_rows(trainer.state.log_history)
    assert [row["step"] for row in rows] == [0, 1, 2]
    for row in rows:
        for name in ("cruxeval_o", "cruxeval_i"):
            assert 0.0 <= row[f"eval/{name}/accuracy"] <= 1.0
            # A random tiny model writes no <answer> block: every answer is a format error, so accuracy is 0.
            assert row[f"eval/{name}/format_error_rate"] == 1.0
            assert row[f"eval/{name}/accuracy"] == 0.0
        # Evaluation gets entries of its own: GRPOTrainer's training metrics stay in the training rows.
        assert "loss" not in row and "reward" not in row
    assert sum("loss" in row for row in trainer.state.log_history) == 2
    assert callback._executor is None  # closed at the end of training
    assert trainer.model.training  # the live model is back in training mode


def test_callback_without_trainer_reference(tmp_path):
    callback = AZREvalCallback(dataset=str(CRUX), benchmarks=["cruxeval_o"], num_items=2, eval_steps=1,
                               max_new_tokens=4, executor_config=ExecutorConfig(workers=1))  # fmt: skip
    trainer = _grpo_trainer(tmp_path, max_steps=1, callbacks=[callback])
    trainer.train()
    rows = _eval_rows(trainer.state.log_history)
    assert len(rows) == 1 and rows[0]["step"] == 1
    assert "eval/cruxeval_i/accuracy" not in rows[0]


def test_callback_with_azr_trainer(tmp_path):
    from azr_trl import AZRConfig, AZRTrainer

    tokenizer = make_tiny_tokenizer()
    args = AZRConfig(
        output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=3, propose_per_type=1, solve_per_type=1,
        mc_rollouts=2, num_references=1, max_completion_length=8, executor_timeout=2.0, executor_workers=1,
        use_cpu=True, bf16=False, report_to="none", logging_steps=1, save_strategy="no",
    )  # fmt: skip
    trainer = AZRTrainer(make_tiny_model(tokenizer), args=args, processing_class=tokenizer)
    trainer.add_callback(AZREvalCallback(trainer, dataset=str(CRUX), num_items=2, eval_steps=1, max_new_tokens=4))
    trainer.train()
    trainer.close()
    rows = _eval_rows(trainer.state.log_history)
    assert len(rows) == 1 and not any(k.startswith("azr/") for k in rows[0])
    assert any("azr/deduction/solve/reward_mean" in row for row in trainer.state.log_history)


# An abduction item whose program needs 1.5 GiB: its answer only checks out in a sandbox allowed more than 1024 MiB.
# `bytes(n)` takes its zeroed memory from calloc, so the 1.5 GiB count against the address-space limit at once but are
# never written: the run takes a millisecond. (`bytearray(n)` writes every byte: about 2.5 s per run on a loaded
# 2-core machine, twice with the determinism check, and past the 10 s timeout under load.)
_BIG = {
    "id": "big_0",
    "code": "def f(mib):\n    block = bytes(mib * 1024 * 1024)\n    return len(block) // (1024 * 1024)",
    "input": "1536",
    "output": "1536",
}


class _RightAnswers:
    """Stands in for the model, which the tiny one cannot be: every prompt gets the correct abduction answer."""

    def __init__(self, model, tokenizer, batch_size: int = 8):
        pass

    def generate(self, prompts, settings, progress=True, desc=None):
        return [["<think>f allocates mib MiB</think> <answer>\n```input\n1536\n```\n</answer>"] for _ in prompts]


@pytest.mark.parametrize("memory_mb", [3072, None])
def test_azr_trainer_evaluation_runs_with_the_recipes_executor_settings(tmp_path, monkeypatch, memory_mb):
    """The callback an AZRTrainer adds (eval_benchmarks) verifies answers with the run's executor_memory_mb and
    banned_modules, not the executor defaults (1024 MiB, the reference ban list)."""
    from azr_trl import AZRConfig, AZRTrainer
    from azr_trl.evaluation import callback as callback_module

    data = tmp_path / "big.jsonl"
    data.write_text(json.dumps(_BIG) + "\n")
    tokenizer = make_tiny_tokenizer()
    limits = {"executor_memory_mb": memory_mb} if memory_mb else {}
    args = AZRConfig(
        output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=3, propose_per_type=1, solve_per_type=1,
        mc_rollouts=2, num_references=1, max_completion_length=8, executor_timeout=10.0, executor_workers=1,
        banned_modules=["json"], eval_benchmarks=["cruxeval_i"], eval_benchmark_file=str(data), eval_steps=1,
        use_cpu=True, bf16=False, report_to="none", logging_steps=1, save_strategy="no", **limits,
    )  # fmt: skip
    trainer = AZRTrainer(make_tiny_model(tokenizer), args=args, processing_class=tokenizer)
    try:
        (callback,) = [c for c in trainer.callback_handler.callbacks if isinstance(c, AZREvalCallback)]
        monkeypatch.setattr(callback_module, "HFGenerator", _RightAnswers)
        metrics = callback._evaluate(trainer.args, trainer.state, trainer.control, model=trainer.model)
        assert metrics["eval/cruxeval_i/format_error_rate"] == 0.0
        # Allowed 3072 MiB, f(1536) runs and the answer is right; with the default 1024 MiB it runs out of memory.
        assert metrics["eval/cruxeval_i/accuracy"] == (1.0 if memory_mb else 0.0)
        # The ban list is the run's too: json is banned, random (banned by default) is not.
        executor = callback._scoring_executor()
        uses_json, uses_random = executor.run(
            [
                ExecJob("import json\ndef f(x):\n    return json.dumps(x)", "1"),
                ExecJob("import random\ndef f(x):\n    return x", "1"),
            ]
        )
        assert uses_json.status == "banned_import"
        assert uses_random.ok
    finally:
        callback.close()
        trainer.close()


def _distributed_main(out_dir: str) -> None:
    """Run by torchrun: 2 CPU ranks, an odd number of items (so one rank gets a padding repeat)."""
    trainer = _grpo_trainer(Path(out_dir), max_steps=1)
    callback = AZREvalCallback(trainer, dataset=str(CRUX), num_items=3, eval_steps=1, max_new_tokens=4)
    trainer.add_callback(callback)
    trainer.train()
    from trl.distributed import DistributedBackend

    report = {
        "zero3": DistributedBackend(trainer.accelerator).is_zero3,
        "rows": _eval_rows(trainer.state.log_history),
        "items": {name: sorted(results) for name, results in callback.last_results.items()},
    }
    Path(out_dir, f"rank{trainer.accelerator.process_index}.json").write_text(json.dumps(report))


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("backend", ["ddp", "zero3"])
def test_callback_on_two_ranks_logs_once(tmp_path, backend):
    # One thread per rank on 2 cores; DeepSpeed's CPU accelerator for ZeRO-3 (its parameters really are sharded, so
    # generation only works if both ranks gather them together).
    env = dict(os.environ, OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu")
    if backend == "ddp":
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    else:
        config = Path(__file__).resolve().parent.parent / "accelerate_configs" / "zero3.yaml"
        launcher = [str(Path(sys.executable).parent / "accelerate"), "launch", "--config_file", str(config),
                    "--num_processes", "2", "--mixed_precision", "no"]  # fmt: skip
    result = subprocess.run([*launcher, __file__, str(tmp_path)], capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    main, other = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert main["zero3"] is (backend == "zero3")
    # Only the main process logs; every rank holds the results of all 3 items, gathered from both ranks.
    assert len(main["rows"]) == 1 and main["rows"][0]["step"] == 1 and other["rows"] == []
    assert main["items"] == other["items"] == {"cruxeval_o": [0, 1, 2], "cruxeval_i": [0, 1, 2]}


def test_callback_rejects_bad_configuration(tmp_path):
    with pytest.raises(ValueError, match="eval_steps must be >= 1"):
        AZREvalCallback(dataset=str(CRUX), eval_steps=0)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"code": "def f(x): return x"}\n')
    with pytest.raises(ValueError, match="missing column 'input'"):
        AZREvalCallback(dataset=str(bad), eval_steps=1)


if __name__ == "__main__":
    _distributed_main(sys.argv[1])


def test_callback_keeps_the_training_banned_tokens_out(monkeypatch):
    """The evaluation samples the policy training samples: `banned_token_ids` of the training args hold there too."""
    from types import SimpleNamespace

    from transformers import TrainerControl, TrainerState

    from azr_trl.generation.generators import HFGenerator

    tokenizer = make_tiny_tokenizer()
    allowed = {tokenizer.convert_tokens_to_ids("x"), tokenizer.eos_token_id}
    banned = [i for i in range(len(tokenizer)) if i not in allowed]
    completions = []
    generate = HFGenerator.generate

    def spy(self, prompts, settings, progress=True, desc="generate"):
        completions.extend(out := generate(self, prompts, settings, progress=progress, desc=desc))
        return out

    monkeypatch.setattr(HFGenerator, "generate", spy)
    callback = AZREvalCallback(dataset=str(CRUX), benchmarks=["cruxeval_o"], num_items=2, eval_steps=1,
                               max_new_tokens=8, executor_config=ExecutorConfig(workers=1))  # fmt: skip
    model = make_tiny_model(tokenizer)
    try:
        for args, only_x in ((SimpleNamespace(), False), (SimpleNamespace(banned_token_ids=banned), True)):
            completions.clear()
            callback._evaluate(args, TrainerState(), TrainerControl(), model=model, processing_class=tokenizer)
            assert len(completions) == 2
            assert all(set(samples[0]) <= {"x"} for samples in completions) == only_x, completions
    finally:
        callback.close()
