"""The project's `evaluate` metric: loads offline from the package, scores like code_eval's pass@k, and runs every
candidate in the sandboxed executor (never in this process)."""

from __future__ import annotations

import builtins
import os
import time
from pathlib import Path

import evaluate
import pytest

import azr_trl
from azr_trl.evaluation import scoring
from azr_trl.evaluation.registry import CodeGenItem
from azr_trl.evaluation.scoring import EXECUTION_METRIC_DIR, reference_item, reference_of


CORRECT = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"
LOOPS = "def add(a, b):\n    while True:\n        pass\n"
TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"


@pytest.fixture(scope="module")
def metric():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # conftest: nothing may come from the Hub
    return evaluate.load(str(EXECUTION_METRIC_DIR))


def test_module_ships_inside_the_package():
    package = Path(azr_trl.__file__).resolve().parent
    assert EXECUTION_METRIC_DIR.parent == package / "evaluation" and EXECUTION_METRIC_DIR.is_dir()
    # evaluate.load(<dir>) imports <dir>/<dir name>.py; setup.cfg must ship it as package data.
    assert (EXECUTION_METRIC_DIR / f"{EXECUTION_METRIC_DIR.name}.py").is_file()
    setup_cfg = (package.parent / "setup.cfg").read_text()
    assert "evaluation/execution_metric/*.py" in setup_cfg


def test_built_wheel_contains_the_metric_module(tmp_path):
    import subprocess
    import sys
    import zipfile

    root = Path(azr_trl.__file__).resolve().parent.parent
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path)]
    subprocess.run([*build, str(root)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("azr_trl-*.whl")
    assert "azr_trl/evaluation/execution_metric/execution_metric.py" in zipfile.ZipFile(wheel).namelist()


def test_correct_and_incorrect_programs(metric):
    pass_at_k, results = metric.compute(
        predictions=[[CORRECT, WRONG], [WRONG, WRONG]], references=[TESTS, TESTS], k=[1, 2], timeout=5
    )
    assert pass_at_k == {"pass@1": pytest.approx(0.25), "pass@2": pytest.approx(0.5)}
    assert [r["passed"] for _, r in results[0]] == [True, False]
    assert results[0][1][1]["verdict"] == "runtime_error" and "AssertionError" in results[0][1][1]["error"]
    assert results[0][0][1]["result"] == "passed" and results[0][0][1]["completion_id"] == 0
    # A k larger than some problem's candidate count is not reported (as in code_eval).
    pass_at_k, _ = metric.compute(predictions=[[CORRECT]], references=[TESTS], k=[1, 5])
    assert set(pass_at_k) == {"pass@1"}


def test_code_eval_style_check_reference(metric):
    reference = "def check(candidate):\n    assert candidate(2, 3) == 5\n\ncheck(add)\n"
    pass_at_k, _ = metric.compute(predictions=[[CORRECT, WRONG]], references=[reference], k=[1])
    assert pass_at_k["pass@1"] == pytest.approx(0.5)


def test_a_looping_candidate_costs_only_its_own_score(metric):
    start = time.perf_counter()
    pass_at_k, results = metric.compute(
        predictions=[[CORRECT, LOOPS, CORRECT]], references=[TESTS], k=[1], timeout=2, num_workers=2
    )
    elapsed = time.perf_counter() - start
    assert [r["verdict"] for _, r in results[0]] == ["ok", "timeout", "ok"]
    assert pass_at_k["pass@1"] == pytest.approx(2 / 3)
    assert elapsed < 30  # killed at its deadline, not waited for


def test_hostile_candidates_never_touch_this_process(metric, tmp_path):
    target = tmp_path / "pwned.txt"
    hostile = [
        "import builtins\nbuiltins.AZR_METRIC_MARK = 1\ndef add(a, b):\n    return a + b\n",  # passes, harmlessly
        f"open({str(target)!r}, 'w').write('x')\ndef add(a, b):\n    return a + b\n",
        "import os\nos.kill(os.getppid(), 9)\n",
        "import socket\nsocket.create_connection(('127.0.0.1', 22))\n",
        "import subprocess\nsubprocess.run(['true'])\n",
        "x = 'a' * (1 << 34)\n",
    ]
    _, results = metric.compute(predictions=[hostile], references=[TESTS], k=[1], timeout=5)
    outcomes = [r for _, r in results[0]]
    assert outcomes[0]["passed"]  # its own interpreter got the mark, not ours
    assert not hasattr(builtins, "AZR_METRIC_MARK")
    assert not target.exists()
    assert not any(o["passed"] for o in outcomes[1:]), outcomes
    assert outcomes[-1]["verdict"] in ("memory", "runtime_error")
    # The evaluating process and the metric are still fine afterwards.
    pass_at_k, _ = metric.compute(predictions=[[CORRECT]], references=[TESTS], k=[1])
    assert pass_at_k["pass@1"] == 1.0


def test_harness_styles_travel_as_json_references(metric):
    item = CodeGenItem(
        id="lcb-1",
        prompt="",
        test_style="stdin",
        test_cases=[{"input": "2 3\n", "output": "5\n"}, {"input": "1 1\n", "output": "2\n"}],
    )
    assert reference_item(reference_of(item)) == CodeGenItem(id="", prompt="", **{
        k: getattr(item, k) for k in ("test_style", "test", "entry_point", "starter_code", "test_cases")
    })  # fmt: skip
    good = "a, b = map(int, input().split())\nprint(a + b)\n"
    bad = "a, b = map(int, input().split())\nprint(a * b)\n"
    pass_at_k, _ = metric.compute(predictions=[[good, bad]], references=[reference_of(item)], k=[1])
    assert pass_at_k["pass@1"] == pytest.approx(0.5)


def test_the_executor_config_sets_the_limits(metric):
    from azr_trl.executor import ExecutorConfig

    hungry = "def add(a, b):\n    block = bytearray(600 * 1024 * 1024)\n    return a + b + len(block) * 0\n"
    roomy, _ = metric.compute(predictions=[[hungry]], references=[TESTS], k=[1], timeout=10)
    assert roomy["pass@1"] == 1.0  # the default limit, 1024 MiB, holds it
    tight, results = metric.compute(
        predictions=[[hungry]], references=[TESTS], k=[1], executor_config=ExecutorConfig(memory_mb=256, timeout=10)
    )
    assert tight["pass@1"] == 0.0 and results[0][0][1]["verdict"] in ("memory", "runtime_error")


def test_eval_scores_code_generation_through_the_metric(monkeypatch):
    from azr_trl.evaluation.scoring import make_benchmark_executor
    from azr_trl.executor import ExecutorConfig

    calls = []
    real = scoring.load_execution_metric()

    class Spy:
        def compute(self, **kwargs):
            calls.append(kwargs)
            return real.compute(**kwargs)

    monkeypatch.setattr(scoring, "load_execution_metric", lambda: Spy())
    item = CodeGenItem(id="he-0", prompt="def add(a, b):\n", test_style="check", entry_point="add",
                       test="def check(candidate):\n    assert candidate(2, 3) == 5\n")  # fmt: skip
    completions = [[f"```python\n{CORRECT}```", f"```python\n{WRONG}```", "```python\n```"]]
    with make_benchmark_executor(ExecutorConfig(timeout=5)) as executor:
        records = scoring.score_code_generation([item], completions, executor)[0]
    assert [r["correct"] for r in records] == [True, False, False]
    assert records[2]["verdict"] == "no_code"
    assert len(calls) == 1 and len(calls[0]["predictions"][0]) == 2  # the no-code sample never ran
