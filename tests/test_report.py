"""`azr-trl report`, the end-of-run summary and the progress line, on a real (tiny) run directory.

The run directory comes from the real training script (`azr_trl.launch.run`) on a tiny in-code model saved to disk,
so it has everything a run writes: trainer_state.json, checkpoints with azr_buffer.json, completions parquet files.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from azr_trl.cli.main import main as cli_main
from azr_trl.launch import run
from azr_trl.run_outputs.progress import format_step_line
from azr_trl.run_outputs.report import load_log_history, proposal_parts, write_report
from azr_trl.run_outputs.summary import format_summary, pick_proposals

from tiny import save_tiny_model


ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "recipes" / "smollm2-135m" / "cpu_demo.yaml"
FIXTURES = Path(__file__).parent / "fixtures" / "completions"

TINY_OVERRIDES = [
    "--max_steps", "2",
    "--propose_per_type", "1",
    "--solve_per_type", "1",
    "--per_device_train_batch_size", "3",
    "--mc_rollouts", "2",
    "--num_references", "1",
    "--max_completion_length", "12",
    "--learning_rate", "0.1",
    "--save_steps", "1",
    "--save_total_limit", "2",
]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A finished 2-step run of the training script on a tiny model, with its report written by the script."""
    base = tmp_path_factory.mktemp("tiny_run")
    save_tiny_model(base / "model")
    out = base / "run"
    argv = ["--config", str(DEMO), "--model_name_or_path", str(base / "model"), "--output_dir", str(out)]
    assert run([*argv, *TINY_OVERRIDES, "--report_dir", str(base / "report_by_train")]) == 0
    return out


def test_train_script_output(tiny_run, capsys):
    assert (tiny_run / "trainer_state.json").is_file()
    assert (tiny_run / "azr_buffer.json").is_file()
    assert (tiny_run / "checkpoint-2" / "azr_buffer.json").is_file()
    assert sorted((tiny_run / "completions").glob("completions_*.parquet"))
    # --report_dir made the script write the report itself.
    assert (tiny_run.parent / "report_by_train" / "report.html").is_file()


def test_train_script_resumes_from_the_last_checkpoint(tiny_run, tmp_path, caplog):
    copy = tmp_path / "resumed"
    shutil.copytree(tiny_run, copy)
    model = tiny_run.parent / "model"
    argv = ["--config", str(DEMO), "--model_name_or_path", str(model), "--output_dir", str(copy), *TINY_OVERRIDES]
    # The demo recipe turns auto-resume off; a GPU recipe leaves it on.
    assert run([*argv, "--max_steps", "3", "--auto_resume", "true", "--summary", "false"]) == 0
    assert f"Resuming from {copy / 'checkpoint-2'}" in caplog.text
    history = load_log_history(copy)
    assert [e["step"] for e in history if "azr/deduction/solve/reward_mean" in e] == [1, 2, 3]


def test_report_writes_plots_and_self_contained_html(tiny_run, tmp_path):
    page = write_report(tiny_run, tmp_path / "report")
    assert page == tmp_path / "report" / "report.html"
    text = page.read_text()
    pngs = {p.stem for p in (tmp_path / "report").glob("*.png")}
    assert {"rewards", "accuracy", "proposals", "buffer", "lengths", "time"} <= pngs
    # Every plot is inlined; nothing is loaded from elsewhere.
    assert text.count("data:image/png;base64,") == len(pngs)
    assert "src='http" not in text and 'src="http' not in text and "<link" not in text
    # First/last-step table: numbers at step 1 and step 2 (the run's closing train_runtime entry is not a step).
    assert "<th>reward step 1</th><th>reward step 2</th>" in text
    for task in ("deduction", "abduction", "induction"):
        assert re.search(rf"<td>{task}</td><td>solve</td><td>-?\d\.\d{{3}}</td><td>-?\d\.\d{{3}}</td>", text), task
    assert "Proposed tasks" in text


def test_report_cli(tiny_run, tmp_path, capsys):
    assert cli_main(["report", str(tiny_run), "--output", str(tmp_path / "r")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "r" / "report.html")
    assert (tmp_path / "r" / "report.html").is_file()
    # Default location: RUN_DIR/report.
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    assert cli_main(["report", str(copy)]) == 0
    assert (copy / "report" / "report.html").is_file()


def test_report_reads_the_latest_checkpoint_while_a_run_is_going(tiny_run, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(tiny_run, partial)
    (partial / "trainer_state.json").unlink()
    history = load_log_history(partial)
    assert history and history[-1]["step"] == 2  # from checkpoint-2, not checkpoint-1
    assert write_report(partial).is_file()


def test_report_tolerates_missing_metrics(tmp_path):
    run_dir = tmp_path / "plain"
    run_dir.mkdir()
    state = {"log_history": [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.4, "azr/time/execute": 1.0}]}
    (run_dir / "trainer_state.json").write_text(json.dumps(state))
    page = write_report(run_dir)
    text = page.read_text()
    assert "No data logged for this plot" in text
    assert "No completions logged" in text
    assert (run_dir / "report" / "time.png").is_file()
    assert not (run_dir / "report" / "rewards.png").exists()


def test_report_cli_rejects_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert cli_main(["report", str(tmp_path)]) == 1
    assert "has no trainer_state.json" in capsys.readouterr().err
    assert cli_main(["report", str(tmp_path / "missing")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_summary_of_a_real_run(tiny_run):
    history = load_log_history(tiny_run)
    text = format_summary(tiny_run, history)
    assert "AZR run summary" in text
    assert "Steps: 2" in text
    for task in ("deduction", "abduction", "induction"):
        assert f"  {task:<10} propose" in text and f"  {task:<10} solve" in text
    assert "Buffer: deduction" in text
    assert f"Checkpoint: {tiny_run / 'checkpoint-2'}" in text
    assert f"azr-trl report {tiny_run}" in text
    # The tiny model proposes nonsense, but three proposals with their verdicts are still shown.
    assert text.count("[deduction /") + text.count("[abduction /") + text.count("[induction /") == 3


def _fixture_completion(name: str) -> str:
    cases = yaml.safe_load((FIXTURES / "propose_triplet.yaml").read_text())
    return next(c["completion"] for c in cases if c["name"] == name)


def test_pick_proposals_prefers_valid_then_distinct_verdicts():
    good = _fixture_completion("r1_well_formed")
    table = pd.DataFrame(
        {
            "step": [1, 1, 2, 2, 2, 2],
            "role": ["propose", "solve", "propose", "propose", "propose", "propose"],
            "task_type": ["deduction"] * 6,
            "verdict": ["ok", "correct", "syntax_error", "syntax_error", "timeout", "ok"],
            "completion": ["old", "x", "a", "b", "c", good],
        }
    )
    picked = pick_proposals(table)
    assert [p["verdict"] for p in picked] == ["ok", "syntax_error", "timeout"]
    # With one verdict everywhere, different task types come next.
    same = table.assign(
        verdict="missing_answer", task_type=["deduction", "x", "deduction", "deduction", "abduction", "induction"]
    )
    assert sorted(p["task_type"] for p in pick_proposals(same)) == ["abduction", "deduction", "induction"]
    assert picked[0]["step"] == 2 and picked[0]["completion"] == good  # the latest valid one
    program, inputs = proposal_parts(picked[0]["completion"])
    assert program.startswith("def f(nums, order):") and inputs == "[3, 1, 2], 'desc'"
    # Conversational completions (lists of messages) are read as text too.
    chat = pd.DataFrame(
        {"step": [1], "role": ["propose"], "task_type": ["abduction"], "verdict": ["ok"],
         "completion": [[{"role": "assistant", "content": good}]]}
    )  # fmt: skip
    assert proposal_parts(pick_proposals(chat)[0]["completion"])[1] == "[3, 1, 2], 'desc'"


def test_progress_line():
    logs = {
        "azr/deduction/propose/reward_mean": -0.25,
        "azr/deduction/solve/reward_mean": 0.5,
        "azr/abduction/propose/reward_mean": float("nan"),
        "azr/deduction/propose/valid_rate": 0.5,
        "azr/abduction/propose/valid_rate": 0.0,
        "azr/buffer/deduction/size": 5,
        "azr/buffer/abduction/size": 3,
        "azr/buffer/deduction/new": 2,
        "loss": 0.1,
    }
    line = format_step_line(logs, step=3, max_steps=8, seconds_per_step=12.34)
    assert line == "step 3/8 | 12.3s/step | ded P -0.25 S +0.50 | abd P -- S -- | valid 25% | buffer 8 (+2)"
    assert "\n" not in line
    # A family's name stands for itself, and the step's time split is shown where it was logged.
    logs = {"azr/arithmetic/solve/reward_mean": 0.25, "azr/time/generate_solve": 41.6, "azr/time/optimize": 90.2}
    line = format_step_line(logs, step=1, max_steps=2)
    assert line == "step 1/2 | arithmetic P -- S +0.25 | time propose -- solve 42s mc -- exec -- optimize 90s"


def test_verdict_fractions_count_a_verdict_a_step_did_not_log_as_zero():
    from azr_trl.run_outputs.report import verdict_fractions

    prefix = "azr/arithmetic/propose/verdict/"
    history = [
        {"step": 1, prefix + "missing_answer": 1.0},
        {"step": 2, prefix + "ok": 0.5, prefix + "outside_family": 0.5},
        {"step": 3, "loss": 0.1},  # no proposals logged: not a step of the mean
    ]
    fractions = verdict_fractions(history, ["arithmetic"])["arithmetic"]
    assert fractions == {"missing_answer": 0.5, "ok": 0.25, "outside_family": 0.25}
    assert sum(fractions.values()) == 1.0
