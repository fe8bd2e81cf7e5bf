"""Scoring in the sandboxed executor: the code-reasoning solver scorers and the code-generation test harnesses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from azr_trl.evaluation.registry import CodeGenItem, get_benchmark
from azr_trl.evaluation.runner import EvalSettings
from azr_trl.evaluation.scoring import make_benchmark_executor, score_code_generation, score_completions
from azr_trl.executor import ExecutorConfig, make_executor


CRUX = Path(__file__).parent / "data" / "eval" / "cruxeval_tiny.jsonl"


@pytest.fixture(scope="module")
def executor():
    ex = make_benchmark_executor(ExecutorConfig(timeout=2.0, workers=2))
    yield ex
    ex.close()


def _answer(tag: str, body: str) -> str:
    return f"<think>traced it</think> <answer>\n```{tag}\n{body}\n```\n</answer>"


def test_cruxeval_output_prediction_scores_like_the_deduction_solver(executor):
    bench = get_benchmark("cruxeval_o")
    items = bench.load(CRUX)
    completions = [
        [_answer("output", "'CBA'"), _answer("output", "'cba'")],  # right, wrong
        [_answer("output", "[1, 2, 3]"), _answer("output", "[1,2,3]")],  # literal equality, not text equality
        [_answer("output", "[('b', 1), ('a', 2)]"), "```output\n[('b', 1), ('a', 2)]\n```"],  # no tags: format error
        [_answer("output", "10"), _answer("output", "ten")],
    ]
    scored = score_completions(bench, items, completions, executor=executor, require_think=False)
    assert [[s["correct"] for s in item] for item in scored] == [
        [True, False],
        [True, True],
        [True, False],
        [True, False],
    ]
    assert scored[2][1]["format_ok"] is False


def test_cruxeval_input_prediction_runs_the_program_on_the_answer(executor):
    bench = get_benchmark("cruxeval_i")
    items = bench.load(CRUX)
    completions = [
        [
            _answer("input", "'abc'"),
            _answer("input", "'ABC'"),
            _answer("input", "'xyz'"),
        ],  # any producing input counts
        [_answer("input", "[3, 6, 9], 3"), _answer("input", "[1, 2, 3], 1")],
        [_answer("input", "{'b': 1, 'a': 2}"), _answer("input", "{'a': 1}")],
        [_answer("input", "55"), _answer("input", "__import__('os')")],  # 5+5; not a literal
    ]
    scored = score_completions(bench, items, completions, executor=executor, require_think=True)
    assert [[s["correct"] for s in item] for item in scored] == [
        [True, True, False],
        [True, True],
        [True, False],
        [True, False],
    ]


def _humaneval_zero() -> CodeGenItem:
    return get_benchmark("humaneval").load(limit=1)[0]


def test_humaneval_harness_in_the_sandbox(executor):
    item = _humaneval_zero()
    good = (
        "```python\nfrom typing import List\n\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:"
        "\n    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n```"
    )
    body_only = "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"
    wrong = "```python\ndef has_close_elements(numbers, threshold):\n    return False\n```"
    loops = "```python\ndef has_close_elements(numbers, threshold):\n    while True:\n        pass\n```"
    scored = score_code_generation([item], [[good, body_only, wrong, loops, "no code at all"]], executor)[0]
    assert [s["correct"] for s in scored] == [True, True, False, False, False]
    assert [s["verdict"] for s in scored[2:4]] == ["runtime_error", "timeout"]


def test_evalplus_tests_get_a_numpy_stand_in(executor):
    test = (
        "import numpy as np\n\ndef assertion(out, exp, atol):\n    if atol == 0 and isinstance(exp, float):\n"
        "        atol = 1e-6\n    if out != exp and atol != 0:\n        assert np.allclose(out, exp, rtol=1e-07, atol=atol)\n"
        "    else:\n        assert out == exp\n\ndef check(candidate):\n    inputs = [[1.0], [2.0]]\n"
        "    results = [0.3333333, 0.6666667]\n    for inp, exp in zip(inputs, results):\n"
        "        assertion(candidate(*inp), exp, 0)\n"
    )
    item = CodeGenItem(id="he+", prompt="def third(x):\n", starter_code="def third(x):\n", test_style="check",
                       test=test, entry_point="third")  # fmt: skip
    right = "```python\ndef third(x):\n    return x / 3\n```"
    wrong = "```python\ndef third(x):\n    return x / 4\n```"
    assert [s["correct"] for s in score_code_generation([item], [[right, wrong]], executor)[0]] == [True, False]


def test_test_programs_past_the_proposal_size_cap_run_in_the_benchmark_executor(executor):
    """A test program carries the benchmark's test data: the benchmark executor runs one longer than the cap on
    model-proposed programs, which an executor built from the same settings refuses unrun."""
    cases = repr([(i, i + 1) for i in range(8000)])
    test = f"def check(candidate):\n    for a, b in {cases}:\n        assert candidate(a, b) == a + b\n"
    assert len(test) > ExecutorConfig().max_program_chars
    item = CodeGenItem(id="big", prompt="def add(a, b):\n", test_style="check", entry_point="add", test=test)
    completions = [["```python\ndef add(a, b):\n    return a + b\n```"]]
    assert score_code_generation([item], completions, executor)[0][0]["correct"]
    with make_executor(ExecutorConfig(timeout=2.0, workers=1)) as plain:
        (refused,) = score_code_generation([item], completions, plain)[0]
    assert not refused["correct"] and refused["verdict"] == "syntax_error"


def test_mbpp_script_stdin_and_functional_harnesses(executor):
    mbpp = get_benchmark("mbpp_plus").convert(
        {"task_id": 1, "prompt": "Add.", "test": "assert add(1, 2) == 3\nassert add(-1, 1) == 0", "test_list": []}, 0
    )
    stdin_row = {
        "question_id": "s", "question_content": "Sum two integers.", "starter_code": "", "metadata": "{}",
        "public_test_cases": json.dumps([{"input": "1 2\n", "output": "3\n", "testtype": "stdin"},
                                         {"input": "10 -4\n", "output": "6", "testtype": "stdin"}]),
    }  # fmt: skip
    functional_row = {
        "question_id": "fn", "question_content": "Sum a list.", "metadata": json.dumps({"func_name": "total"}),
        "starter_code": "class Solution:\n    def total(self, nums: List[int]) -> int:\n        ",
        "public_test_cases": json.dumps([{"input": "[1, 2, 3]", "output": "6", "testtype": "functional"},
                                         {"input": "[]", "output": "0", "testtype": "functional"}]),
    }  # fmt: skip
    lcb = get_benchmark("lcb_generation")
    items = [mbpp, lcb.convert(stdin_row, 0), lcb.convert(functional_row, 1)]
    completions = [
        ["```python\ndef add(a, b):\n    return a + b\n```", "```python\ndef add(a, b):\n    return a - b\n```"],
        [
            "```python\na, b = map(int, input().split())\nprint(a + b)\n```",
            "```python\nimport sys\nprint(sum(map(int, sys.stdin.read().split())))\n```",
            "```python\nprint(3)\n```",
            # A module the sandbox does not preload: its import must be seen before the sandbox drops privileges.
            "```python\nimport json\na, b = map(int, input().split())\nprint(json.dumps(a + b))\n```",
        ],
        [
            "```python\nclass Solution:\n    def total(self, nums: List[int]) -> int:\n        return sum(nums)\n```",
            "```python\nclass Solution:\n    def total(self, nums):\n        return len(nums)\n```",
        ],
    ]
    scored = score_code_generation(items, completions, executor)
    assert [[s["correct"] for s in item] for item in scored] == [
        [True, False],
        [True, True, False, True],
        [True, False],
    ]


def test_evaluate_benchmark_wiring_with_a_tiny_model(executor):
    from azr_trl.evaluation.runner import evaluate_benchmark
    from azr_trl.generation.generators import HFGenerator, SamplingSettings

    from tiny import make_tiny_model, make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer()
    generator = HFGenerator(make_tiny_model(tokenizer), tokenizer, batch_size=3)
    math_items = get_benchmark("math500").load(Path(__file__).parent / "data" / "eval" / "math_tiny.jsonl")
    greedy = EvalSettings(sampling=SamplingSettings(max_new_tokens=4))
    entry = evaluate_benchmark(get_benchmark("math500"), math_items, generator, tokenizer, greedy, progress=False)
    assert entry["n"] == 4 and entry["accuracy"] == 0.0 and "pass@1" not in entry
    assert [len(r["samples"]) for r in entry["records"]] == [1, 1, 1, 1]
    assert entry["records"][0]["reference"] == {"answer": "\\frac{1}{2}"}

    sampled = EvalSettings(sampling=SamplingSettings(max_new_tokens=4, num_samples=2, temperature=1.0))
    items = get_benchmark("cruxeval_o").load(CRUX, limit=2)
    entry = evaluate_benchmark(get_benchmark("cruxeval_o"), items, generator, tokenizer, sampled, executor, False)
    assert entry["num_samples"] == 2 and [len(r["samples"]) for r in entry["records"]] == [2, 2]
    assert entry["pass@1"] == entry["accuracy"] == 0.0 and entry["pass@2"] == 0.0
    assert entry["format_error_rate"] == 1.0
    assert entry["records"][0]["prompt"].startswith("<|im_start|>user\n# Task: Predict the Output")


def test_hf_generator_seeds_each_call_or_draws_from_the_running_stream():
    """A seeded call repeats itself; with ``seed=None`` (seed generation) calls with the same prompts differ."""
    import torch

    from azr_trl.generation.generators import HFGenerator, SamplingSettings

    from tiny import make_tiny_model, make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer()
    generator = HFGenerator(make_tiny_model(tokenizer), tokenizer, batch_size=2)
    prompts = ["def f(x):", [{"role": "user", "content": "Write a program."}], "def f(x):"]
    seeded = SamplingSettings(max_new_tokens=12, temperature=1.0, seed=3)
    first = generator.generate(prompts, seeded, progress=False)
    assert generator.generate(prompts, seeded, progress=False) == first
    assert [len(samples) for samples in first] == [1, 1, 1]
    running = SamplingSettings(max_new_tokens=12, temperature=1.0, seed=None)
    torch.manual_seed(3)
    once = generator.generate(prompts, running, progress=False)
    again = generator.generate(prompts, running, progress=False)
    assert once != again  # 12 tokens sampled from a near-uniform 104-token model: a repeat is vanishingly unlikely
    torch.manual_seed(3)
    assert generator.generate(prompts, running, progress=False) == once  # the stream's seed still makes runs repeat


def test_hf_generator_never_samples_banned_tokens():
    from azr_trl.generation.generators import HFGenerator, SamplingSettings

    from tiny import make_tiny_model, make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer()
    generator = HFGenerator(make_tiny_model(tokenizer), tokenizer, batch_size=2)
    allowed = {tokenizer.convert_tokens_to_ids("x"), tokenizer.convert_tokens_to_ids("y"), tokenizer.eos_token_id}
    banned = tuple(i for i in range(len(tokenizer)) if i not in allowed)
    prompts = ["def f(x):", [{"role": "user", "content": "Write a program."}]]
    for temperature in (0.0, 1.0):
        free = SamplingSettings(max_new_tokens=16, temperature=temperature)
        assert any(set(samples[0]) - {"x", "y"} for samples in generator.generate(prompts, free, progress=False))
        settings = SamplingSettings(max_new_tokens=16, temperature=temperature, banned_token_ids=banned)
        completions = generator.generate(prompts, settings, progress=False)
        assert all(set(samples[0]) <= {"x", "y"} for samples in completions), completions
