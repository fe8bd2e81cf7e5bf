"""Scoring completions, one benchmark category at a time.

- Code reasoning is scored exactly like the AZR solver: the task spec parses the answer and verifies it (deduction
  compares literals without running anything; abduction runs ``f`` on the proposed input in the executor). An answer
  counts as correct only if it is also well formatted, as the solver's reward requires.
- Code generation builds one test program per candidate (candidate + the benchmark's tests + a small harness) and
  runs it in the sandboxed executor (:func:`execute_candidates`, also the core of the project's `evaluate` metric,
  ``execution_metric``); nothing the model wrote runs in this process.
- Math extracts the final answer and grades it with ``math-verify``.

Each scorer returns, per item, one record per sample (``correct`` plus what led to it). The executor they take is
:func:`make_benchmark_executor`'s.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .math_grading import extract_math_answer, grade_math
from .prompts import complete_program, extract_code
from .registry import CODE_GENERATION, CODE_REASONING, MATH, Benchmark, CodeGenItem, MathItem, ReasoningItem


if TYPE_CHECKING:
    from azr_trl.executor import Executor, ExecutorConfig


# The `evaluate` module of the execution metric: `evaluate.load(str(EXECUTION_METRIC_DIR))`.
EXECUTION_METRIC_DIR = Path(__file__).resolve().parent / "execution_metric"

# The harness's entry point: a name a candidate program is unlikely to define itself.
TEST_ENTRY = "azr_eval_run_tests"

# The size cap on a benchmark's test programs: they carry the benchmark's test data (LiveCodeBench's hidden cases run
# to megabytes), far past the cap meant for model-proposed programs.
MAX_TEST_PROGRAM_CHARS = 64_000_000

SampleRecord = dict[str, Any]


def make_benchmark_executor(config: ExecutorConfig) -> Executor:
    """The executor that runs benchmark programs, with ``config``'s backend and limits (time, memory, processes,
    banned modules) but :data:`MAX_TEST_PROGRAM_CHARS` as its program size cap. Every benchmark scorer takes this
    one."""
    from azr_trl.executor import make_executor

    return make_executor(dataclasses.replace(config, max_program_chars=MAX_TEST_PROGRAM_CHARS))


def score_completions(
    benchmark: Benchmark,
    items: Sequence[Any],
    completions: Sequence[Sequence[str]],
    executor: Any = None,
    require_think: bool = False,
) -> list[list[SampleRecord]]:
    """Score ``completions[i]`` (the samples for ``items[i]``) for any benchmark category."""
    if len(items) != len(completions):
        raise ValueError(f"{len(items)} items but {len(completions)} completion lists")
    if benchmark.category == CODE_REASONING:
        return score_code_reasoning(benchmark.task_type, items, completions, executor, require_think)
    if benchmark.category == CODE_GENERATION:
        return score_code_generation(items, completions, executor)
    if benchmark.category == MATH:
        return score_math(items, completions)
    raise ValueError(f"Unknown benchmark category {benchmark.category!r}")


def _flatten(items: Sequence[Any], completions: Sequence[Sequence[str]]) -> list[tuple[int, Any, str]]:
    return [(i, item, text) for i, (item, texts) in enumerate(zip(items, completions, strict=True)) for text in texts]


def _regroup(n_items: int, flat: list[tuple[int, Any, str]], records: list[SampleRecord]) -> list[list[SampleRecord]]:
    grouped: list[list[SampleRecord]] = [[] for _ in range(n_items)]
    for (i, _, _), record in zip(flat, records, strict=True):
        grouped[i].append(record)
    return grouped


def reasoning_task(item: ReasoningItem, task_type: str):
    """The AZR `Task` a code-reasoning item is asked as."""
    from azr_trl.tasks import Task

    return Task(task_type=task_type, program=item.program, input=item.input, output=item.output)


def score_code_reasoning(
    task_type: str,
    items: Sequence[ReasoningItem],
    completions: Sequence[Sequence[str]],
    executor: Any,
    require_think: bool = False,
) -> list[list[SampleRecord]]:
    """Parse and verify every sample with the deduction/abduction solver's own parser and verifier (one batch)."""
    from azr_trl.tasks import get_task_spec

    spec = get_task_spec(task_type)
    flat = _flatten(items, completions)
    tasks = [reasoning_task(item, task_type) for _, item, _ in flat]
    answers = [spec.parse_answer(text, require_think=require_think) for _, _, text in flat]
    verified = spec.verify(executor, tasks, answers) if flat else []
    records = [
        {
            "completion": text,
            "answer": answer.answer,
            "format_ok": answer.format_ok,
            "format_error": answer.error,
            "correct": bool(answer.format_ok and ok),
        }
        for (_, _, text), answer, ok in zip(flat, answers, verified, strict=True)
    ]
    return _regroup(len(items), flat, records)


def score_math(items: Sequence[MathItem], completions: Sequence[Sequence[str]]) -> list[list[SampleRecord]]:
    """Extract each sample's final answer and grade it against the item's gold answer."""
    out = []
    for item, texts in zip(items, completions, strict=True):
        records = []
        for text in texts:
            answer = extract_math_answer(text)
            records.append({"completion": text, "answer": answer, "correct": grade_math(answer, item.answer)})
        out.append(records)
    return out


# ----------------------------------------------------------------------------------------------------------------
# code generation


_STDIN_HARNESS = """

import io as _azr_io
import sys as _azr_sys

_AZR_CANDIDATE = {candidate!r}
_AZR_CASES = {cases!r}


def _azr_same_output(got, expected):
    got_lines = [line.strip() for line in got.strip().splitlines()]
    want_lines = [line.strip() for line in expected.strip().splitlines()]
    if got_lines == want_lines:
        return True
    got_tokens = " ".join(got_lines).split()
    want_tokens = " ".join(want_lines).split()
    if len(got_tokens) != len(want_tokens):
        return False
    for a, b in zip(got_tokens, want_tokens):
        if a == b:
            continue
        try:
            if abs(float(a) - float(b)) > 1e-6 * max(1.0, abs(float(b))):
                return False
        except ValueError:
            return False
    return True


def _azr_input(prompt=""):
    # The sandbox refuses the builtin input(); this one reads the redirected stdin the same way.
    line = _azr_sys.stdin.readline()
    if not line:
        raise EOFError("EOF when reading a line")
    return line[:-1] if line.endswith("\\n") else line


def {entry}():
    code = compile(_AZR_CANDIDATE, "<candidate>", "exec")
    saved = _azr_sys.stdin, _azr_sys.stdout
    for stdin_text, expected in _AZR_CASES:
        captured = _azr_io.StringIO()
        _azr_sys.stdin = _azr_io.StringIO(stdin_text)
        _azr_sys.stdout = captured
        try:
            exec(code, {{"__name__": "__main__", "input": _azr_input}})
        except SystemExit:
            pass
        finally:
            _azr_sys.stdin, _azr_sys.stdout = saved
        if not _azr_same_output(captured.getvalue(), expected):
            return False
    return True
"""

_FUNCTIONAL_HARNESS = """

_AZR_CASES = {cases!r}


def {entry}():
    import json

    for args_text, expected_text in _AZR_CASES:
        args = [json.loads(line) for line in args_text.split("\\n") if line.strip()]
        got = getattr(Solution(), {method!r})(*args)
        if isinstance(got, tuple):
            got = list(got)
        if got != json.loads(expected_text):
            return False
    return True
"""

# EvalPlus' test code (HumanEval+, MBPP+) imports numpy only for its float-tolerant `assertion` helper. The sandbox
# runs programs on the standard library alone (and loads static imports before the program starts), so the import
# line is replaced by this stand-in with the few names those helpers use.
_NUMPY_STANDIN = """
class _AzrNumpyStandIn:
    class ndarray:
        pass

    float32 = float64 = float

    @staticmethod
    def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
        if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
            if not isinstance(a, (list, tuple)) or not isinstance(b, (list, tuple)) or len(a) != len(b):
                return False
            return all(_AzrNumpyStandIn.allclose(x, y, rtol, atol, equal_nan) for x, y in zip(a, b))
        if equal_nan and a != a and b != b:
            return True
        if a == b:
            return True
        try:
            return abs(a - b) <= atol + rtol * abs(b)
        except TypeError:
            return False

    class testing:
        @staticmethod
        def assert_allclose(actual, desired, rtol=1e-07, atol=0, equal_nan=True, err_msg="", verbose=True):
            assert _AzrNumpyStandIn.allclose(actual, desired, rtol, atol, equal_nan), err_msg


np = _AzrNumpyStandIn()
"""
_NUMPY_IMPORT = re.compile(r"^import numpy as np[ \t]*$", re.MULTILINE)


def _with_numpy_standin(test: str) -> str:
    return _NUMPY_IMPORT.sub(lambda _: _NUMPY_STANDIN.strip("\n"), test)


# What LeetCode-style and competitive-programming solutions take for granted.
_LCB_PRELUDE = """from typing import *
from collections import *
from itertools import *
from functools import *
from heapq import *
from bisect import *
from math import *
import collections, itertools, functools, heapq, bisect, math, string, re
"""


def _static_import_copy(candidate: str) -> str:
    """The candidate again, in a block that never runs. The sandbox loads the modules a program imports by statement
    before it drops privileges (later imports cannot read the standard library); a stdin program runs from a string
    with `exec`, so this copy is what makes its imports visible. The executor reads those imports off the compiled
    byte code, so the guard must be one the compiler keeps (``if False:`` is compiled away): the program's
    ``__name__`` is never this. The extra indentation that ends up inside multi-line strings is harmless;
    ``from __future__`` lines, legal only at the top of a file, are left out."""
    body = "\n".join(
        "    " + line if line.strip() else line
        for line in candidate.splitlines()
        if not line.lstrip().startswith("from __future__")
    )
    return f"if __name__ == '__azr_static_imports__':  # imports of the candidate, for the sandbox\n{body}\n    pass\n"


def build_test_program(item: CodeGenItem, candidate: str) -> str:
    """One program that runs ``item``'s tests on ``candidate``; its entry :data:`TEST_ENTRY` returns True iff all pass
    (a failing ``assert`` raises, which the executor reports as a runtime error)."""
    if item.test_style == "check":
        test = _with_numpy_standin(item.test)
        return f"{candidate}\n\n\n{test}\n\n\ndef {TEST_ENTRY}():\n    check({item.entry_point})\n    return True\n"
    if item.test_style == "script":
        # The test script asserts at module level; reaching the entry point means every assertion held.
        test = _with_numpy_standin(item.test)
        return f"{candidate}\n\n\n{test}\n\n\ndef {TEST_ENTRY}():\n    return True\n"
    cases = [(case["input"], case["output"]) for case in item.test_cases]
    if item.test_style == "stdin":
        harness = _STDIN_HARNESS.format(candidate=candidate, cases=cases, entry=TEST_ENTRY)
        return f"{_LCB_PRELUDE}\n{_static_import_copy(candidate)}\n{harness}"
    if item.test_style == "functional":
        harness = _FUNCTIONAL_HARNESS.format(cases=cases, method=item.entry_point, entry=TEST_ENTRY)
        return f"{_LCB_PRELUDE}\n{candidate}\n{harness}"
    raise ValueError(f"Unknown test style {item.test_style!r}")


def build_test_job(item: CodeGenItem, candidate: str):
    """The executor job that tests ``candidate``: no banned-module check (benchmark solutions import freely; the
    sandbox still applies its limits) and a single run (no determinism re-run needed)."""
    from azr_trl.executor import ExecJob

    return ExecJob(
        program=build_test_program(item, candidate), input="", entry=TEST_ENTRY, check_banned=False, determinism_runs=1
    )


def reference_item(reference: str) -> CodeGenItem:
    """The problem a reference of the execution metric describes: a JSON object with the fields of a `CodeGenItem`
    (every test style), or plain test code as for ``code_eval`` (run after the candidate; it passes when the code
    runs to the end without raising)."""
    text = reference.lstrip()
    if text.startswith("{"):
        try:
            fields = json.loads(text)
        except json.JSONDecodeError:
            fields = None
        if isinstance(fields, dict) and "test_style" in fields:
            return CodeGenItem(**{"id": "", "prompt": "", **fields})
    return CodeGenItem(id="", prompt="", test_style="script", test=reference)


def reference_of(item: CodeGenItem) -> str:
    """``item`` as a reference of the execution metric (JSON; the inverse of :func:`reference_item`)."""
    fields = {k: v for k, v in dataclasses.asdict(item).items() if k not in ("id", "prompt")}
    return json.dumps(fields)


def execute_candidates(
    predictions: Sequence[Sequence[str]], problems: Sequence[CodeGenItem], executor: Any
) -> list[list[dict[str, Any]]]:
    """Run every candidate program of ``predictions[i]`` with the tests of ``problems[i]`` in the sandboxed executor
    (one batch, each candidate in its own process with its own time limit). Per candidate: ``passed``, ``verdict``
    and ``error``. Both `azr-trl eval` and the execution metric score through this."""
    if len(predictions) != len(problems):
        raise ValueError(f"{len(predictions)} prediction lists but {len(problems)} problems")
    jobs = [build_test_job(problem, c) for problem, cands in zip(problems, predictions, strict=True) for c in cands]
    results = executor.run(jobs) if jobs else []
    if len(results) != len(jobs):
        raise RuntimeError(f"The executor returned {len(results)} results for {len(jobs)} jobs")
    outcomes = iter(results)
    return [
        [
            {
                "passed": bool(result.ok and result.output == "True"),
                "verdict": str(result.status),
                "error": (result.error or "")[-500:] or None,
            }
            for result in (next(outcomes) for _ in cands)
        ]
        for cands in predictions
    ]


def score_code_generation(
    items: Sequence[CodeGenItem], completions: Sequence[Sequence[str]], executor: Any
) -> list[list[SampleRecord]]:
    """Score every candidate by running its tests in ``executor`` (one batch); a sample is correct iff its tests
    passed. A completion without code is not run."""
    if executor is None:
        raise ValueError("Code-generation benchmarks need an executor to run the tests")
    programs = [
        [complete_program(item, extract_code(text)) for text in texts]
        for item, texts in zip(items, completions, strict=True)
    ]
    outcomes = execute_candidates([[p for p in progs if p is not None] for progs in programs], items, executor)
    out = []
    for texts, progs, item_outcomes in zip(completions, programs, outcomes, strict=True):
        ran = iter(item_outcomes)
        records = []
        for text, program in zip(texts, progs, strict=True):
            if program is None:
                records.append({"completion": text, "program": None, "verdict": "no_code", "correct": False})
                continue
            outcome = next(ran)
            records.append(
                {
                    "completion": text,
                    "program": program,
                    "verdict": outcome["verdict"],
                    "error": outcome["error"],
                    "correct": outcome["passed"],
                }
            )
        out.append(records)
    return out
