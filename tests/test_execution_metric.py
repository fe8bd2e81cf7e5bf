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


class _CountingExecutor:
    """The real executor, counting the jobs it is given."""

    def __init__(self, executor):
        self.executor, self.jobs = executor, []

    def run(self, jobs):
        self.jobs.extend(jobs)
        return self.executor.run(jobs)


def test_eval_scores_code_generation_without_the_metric(monkeypatch):
    """`azr-trl eval` calls the scoring core with its own executor: nothing goes through `evaluate` (no Arrow cache
    on disk), and a sample without code never reaches the executor."""
    from azr_trl.evaluation.scoring import make_benchmark_executor
    from azr_trl.executor import ExecutorConfig

    def refuse(*args, **kwargs):
        raise AssertionError("code generation was scored through `evaluate`")

    monkeypatch.setattr(evaluate.Metric, "compute", refuse)
    monkeypatch.setattr(evaluate.Metric, "add_batch", refuse)
    item = CodeGenItem(id="he-0", prompt="def add(a, b):\n", test_style="check", entry_point="add",
                       test="def check(candidate):\n    assert candidate(2, 3) == 5\n")  # fmt: skip
    completions = [[f"```python\n{CORRECT}```", f"```python\n{WRONG}```", "```python\n```"]]
    with make_benchmark_executor(ExecutorConfig(timeout=5)) as executor:
        counting = _CountingExecutor(executor)
        records = scoring.score_code_generation([item], completions, counting)[0]
    assert [r["correct"] for r in records] == [True, False, False]
    assert records[2]["verdict"] == "no_code"
    assert len(counting.jobs) == 2


def test_eval_scoring_equals_the_metric_on_the_same_candidates(metric):
    """Per candidate, the eval's records carry the metric's passed/verdict/error, and the eval's pass@k is the
    metric's, for every test style (a timeout and a long error included)."""
    from azr_trl.evaluation.registry import get_benchmark
    from azr_trl.evaluation.runner import summarize
    from azr_trl.evaluation.scoring import make_benchmark_executor
    from azr_trl.executor import ExecutorConfig

    noisy = "def add(a, b):\n    raise ValueError('no ' * 400)\n"  # a long error text, cut short
    items = [
        CodeGenItem(id="check", prompt="def add(a, b):\n", starter_code="def add(a, b):\n", test_style="check",
                    entry_point="add", test="def check(candidate):\n    assert candidate(2, 3) == 5\n"),
        CodeGenItem(id="script", prompt="", test_style="script", test=TESTS),
        CodeGenItem(id="stdin", prompt="", test_style="stdin",
                    test_cases=[{"input": "2 3\n", "output": "5\n"}, {"input": "1 1\n", "output": "2\n"}]),
        CodeGenItem(id="functional", prompt="", test_style="functional", entry_point="total",
                    test_cases=[{"input": "[1, 2, 3]", "output": "6"}, {"input": "[]", "output": "0"}]),
    ]  # fmt: skip
    candidates = [
        ["    return a + b\n", WRONG, noisy],  # the first continues the prompt
        [CORRECT, LOOPS, "def add(a, b):\n    return a +\n"],
        ["a, b = map(int, input().split())\nprint(a + b)\n", "print(5)\n", "import sys\nsys.exit(3)\n"],
        [
            "class Solution:\n    def total(self, nums):\n        return sum(nums)\n",
            "class Solution:\n    def total(self, nums):\n        return len(nums)\n",
            "class Solution:\n    pass\n",
        ],
    ]
    completions = [[f"```python\n{c}```" for c in cands] for cands in candidates]
    with make_benchmark_executor(ExecutorConfig(timeout=2)) as executor:
        scored = scoring.score_code_generation(items, completions, executor)
        programs = [[r["program"] for r in records] for records in scored]
        pass_at_k, results = metric.compute(
            predictions=programs, references=[reference_of(item) for item in items], k=[1, 3], executor=executor
        )
    for records, problem in zip(scored, results.values(), strict=True):
        assert [{"passed": r["correct"], "verdict": r["verdict"], "error": r["error"]} for r in records] == [
            {key: outcome[key] for key in ("passed", "verdict", "error")} for _, outcome in problem
        ]
    assert [[r["correct"] for r in records] for records in scored] == [[True, False, False]] * 4
    verdicts = {r["verdict"] for records in scored for r in records}
    assert {"ok", "timeout", "runtime_error", "syntax_error"} <= verdicts
    assert scored[0][2]["error"].startswith("ValueError: no no")
    entry = summarize(get_benchmark("humaneval"), items, [""] * len(items), scored, num_samples=3)
    assert pass_at_k == {key: entry[key] for key in ("pass@1", "pass@3")}
