"""The seeding phase of training (Algorithm 1) on the tiny in-code model: seeds, saves, resumes without reseeding,
stops with the verdicts when the model cannot propose, and leaves every rank of a 2-process run with one buffer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from azr_trl import AZRTrainer
from azr_trl.run_outputs.report import write_report
from azr_trl.seeding.generation import SEED_INDUCTION_FILE, SEED_TASKS_FILE, SeedingError
from azr_trl.seeding.seed_files import load_seed_file

from scripts.tiny_azr_run import length_reward, script_proposals, tiny_config
from tiny import make_tiny_model, make_tiny_tokenizer


SCRIPT = Path(__file__).parent / "scripts" / "tiny_azr_run.py"
SEEDING = dict(seed_num_tasks=6, seed_num_induction=2, induction_num_inputs=4)


def _trainer(output_dir, scripted=True, **overrides):
    tokenizer = make_tiny_tokenizer()
    model = make_tiny_model(tokenizer)
    calls = script_proposals(model, tokenizer) if scripted else None
    config = tiny_config(str(output_dir), **{**SEEDING, **overrides})
    trainer = AZRTrainer(model, args=config, processing_class=tokenizer, reward_funcs=[length_reward])
    return trainer, calls


def _seeding_entries(trainer):
    return [e for e in trainer.state.log_history if any(k.startswith("azr/seeding/") for k in e)]


def _rows(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def test_seeds_saves_and_never_seeds_twice(tmp_path):
    # 1. Step 1 of a two-step run: the run seeds first, writes the seed files, and checkpoints.
    trainer, calls = _trainer(tmp_path, max_steps=1, save_strategy="steps", save_steps=1)
    trainer.train()
    trainer.close()
    assert trainer.state.global_step == 1
    (entry,) = _seeding_entries(trainer)
    assert entry["step"] == 0
    assert entry["azr/seeding/tasks/count"] == entry["azr/seeding/tasks/added"] == 6
    assert entry["azr/seeding/induction/count"] == 2
    assert entry["azr/seeding/tasks/verdict/ok"] >= 6 and entry["azr/seeding/tasks/valid_rate"] == 1.0
    # 2 proposals per round (propose_per_type), one generation call each; the scripted model repeats itself, so
    # some rounds bring duplicates.
    rounds = entry["azr/seeding/tasks/rounds"] + entry["azr/seeding/induction/rounds"]
    assert rounds >= 4 and calls[:rounds] == [2] * rounds
    seed_file, induction_file = tmp_path / SEED_TASKS_FILE, tmp_path / SEED_INDUCTION_FILE
    assert len(_rows(seed_file)) == 6 and len(_rows(induction_file)) == 2
    with _executor() as executor:
        seeds, errors = load_seed_file(seed_file, executor, ("deduction", "abduction"))
    assert errors == [] and len(seeds) == 12  # every row re-validates, once per triplet buffer
    # The seeds are pinned step-0 tasks of the buffers that every later step samples from.
    for task_type in ("deduction", "abduction", "induction"):
        pinned = [t for t in trainer.buffer.tasks(task_type) if t.pinned]
        assert len(pinned) == (3 if task_type == "induction" else 7)  # + the zero task of each buffer
    # The paper's entropy bonus is on by default: GRPO's loss adds it and logs its coefficient.
    assert any(e.get("entropy_coef") == 0.001 and "policy_loss" in e for e in trainer.state.log_history)
    report = (tmp_path / "report_html").joinpath("report.html")
    write_report(tmp_path, tmp_path / "report_html")
    page = report.read_text()
    assert "<h2>Seeding phase</h2>" in page and "<td>seed triplets</td><td>6</td><td>6</td>" in page

    # 2. Step 2: resuming the checkpoint restores the buffer and does not seed again.
    saved = seed_file.read_text()
    resumed, calls = _trainer(tmp_path, max_steps=2)
    resumed.train(resume_from_checkpoint=True)
    resumed.close()
    assert resumed.state.global_step == 2
    assert len(_seeding_entries(resumed)) == 1  # the one from the original run, read back with the checkpoint
    assert seed_file.read_text() == saved
    assert resumed.buffer.fingerprint() != "" and resumed.buffer.size("deduction") >= 7

    # 3. A fresh start in the same output_dir (no checkpoint) reuses the seed files: no seeding generation at all.
    restarted, calls = _trainer(tmp_path, max_steps=1, save_strategy="no")
    restarted.train()
    restarted.close()
    (entry,) = _seeding_entries(restarted)
    assert entry["azr/seeding/tasks/count"] == 6 and entry["azr/seeding/tasks/added"] == 0
    assert entry["azr/seeding/tasks/rounds"] == 0 and entry["azr/seeding/induction/rounds"] == 0
    assert seed_file.read_text() == saved
    for task_type in ("deduction", "abduction"):
        assert {t.key() for t in seeds} <= {t.key() for t in restarted.buffer.tasks(task_type)}


def _executor():
    from azr_trl.executor import ExecutorConfig, make_executor

    return make_executor(ExecutorConfig(timeout=3.0, workers=2))


def test_a_model_that_cannot_propose_stops_with_the_verdicts(tmp_path):
    """The real tiny model (random weights) through the trainer's generation path: no valid task, a clear error."""
    trainer, _ = _trainer(tmp_path, scripted=False, seed_num_tasks=4, seed_num_induction=0, seed_patience=2)
    with pytest.raises(SeedingError) as caught:
        trainer.train()
    trainer.close()
    message = str(caught.value)
    assert "collected 0 of 4 seed tasks (at least 4 needed) in 2 rounds: 4 proposals, 0% valid" in message
    assert "no new valid task in 2 rounds in a row" in message and "Proposal verdicts: missing_answer 4" in message
    assert str(tmp_path / SEED_TASKS_FILE) in message
    assert (tmp_path / SEED_TASKS_FILE).read_text() == ""  # the file is there, for a rerun to continue from
    (entry,) = _seeding_entries(trainer)
    assert entry["azr/seeding/tasks/proposals"] == 4 and entry["azr/seeding/tasks/verdict/missing_answer"] == 4
    assert trainer.state.global_step == 0


@pytest.mark.slow
@pytest.mark.distributed
def test_two_ranks_seed_one_buffer(tmp_path):
    """torchrun, 2 CPU ranks: each proposes its share, the gathered seeds are identical everywhere."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [
        str(torchrun), "--nproc_per_node", "2", "--master_port", "29547", str(SCRIPT), str(tmp_path),
        "--max-steps", "1", "--seed-tasks", "8", "--seed-induction", "2",
    ]  # fmt: skip
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    rank1 = json.loads((tmp_path / "rank1.json").read_text())
    assert rank0["world_size"] == 2
    assert rank0["fingerprint"] == rank1["fingerprint"] and rank0["buffer"] == rank1["buffer"]
    assert rank0["checksum"] == rank1["checksum"]
    assert len(rank0["seeding"]) == len(rank1["seeding"]) == 1
    seeding = rank0["seeding"][0]
    # Every count is a total over both ranks, so the ranks log the same numbers (their own wall time aside).
    assert {k: v for k, v in seeding.items() if not k.endswith("/seconds")} == {
        k: v for k, v in rank1["seeding"][0].items() if not k.endswith("/seconds")
    }
    assert seeding["azr/seeding/tasks/count"] == 8 and seeding["azr/seeding/induction/count"] == 2
    # Both ranks proposed (2 per round each): rank 1's own programs (x * 4 + k) are among the seeds, and the
    # proposals both ranks made alike were kept once.
    programs = [row["program"] for row in _rows(tmp_path / SEED_TASKS_FILE)]
    assert len(programs) == 8 == len(set(programs))
    assert any("x * 4 +" in p for p in programs) and any("x * 3 +" in p for p in programs)
    assert seeding["azr/seeding/tasks/verdict/duplicate"] >= 1
    assert seeding["azr/seeding/tasks/proposals"] == 4 * seeding["azr/seeding/tasks/rounds"]
    # Solver draws are global: with 9 deduction tasks and 2 per rank, the ranks solve 4 different tasks.
    draws = [set(rank["solve_draw"]["deduction"]) for rank in (rank0, rank1)]
    assert len(draws[0]) == len(draws[1]) == 2 and not draws[0] & draws[1]
