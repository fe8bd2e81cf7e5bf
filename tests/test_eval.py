"""Evaluation without a model: registry and loaders, metrics, math grading, extraction, results, model card, CLI errors."""

from __future__ import annotations

import base64
import json
import math
import pickle
import zlib
from pathlib import Path

import pytest

from azr_trl.cli.main import main
from azr_trl.evaluation.callback import _metrics, _rank_share
from azr_trl.evaluation.data import BenchmarkDataError
from azr_trl.evaluation.math_grading import extract_math_answer, grade_math
from azr_trl.evaluation.metrics import aggregate_scores, ks_for, mean_pass_at_k, pass_at_k
from azr_trl.evaluation.model_card import update_model_card
from azr_trl.evaluation.prompts import code_generation_prompt, complete_program, extract_code
from azr_trl.evaluation.registry import (
    BENCHMARKS,
    CodeGenItem,
    MathItem,
    ReasoningItem,
    decode_lcb_tests,
    get_benchmark,
    lcb_execution_to_triplet,
    parse_benchmark_list,
)
from azr_trl.evaluation.runner import build_prompts, results_table, summarize, write_results
from azr_trl.evaluation.scoring import build_test_program, score_math


DATA = Path(__file__).parent / "data" / "eval"
CRUX = DATA / "cruxeval_tiny.jsonl"
MATH = DATA / "math_tiny.jsonl"


# ----- metrics -----
@pytest.mark.parametrize("n,c,k", [(1, 0, 1), (1, 1, 1), (10, 3, 1), (10, 3, 5), (20, 1, 10), (5, 5, 2), (7, 0, 7)])
def test_pass_at_k_matches_the_combinatorial_definition(n, c, k):
    expected = 1 - math.comb(n - c, k) / math.comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_rejects_impossible_arguments():
    with pytest.raises(ValueError, match="at least 5 samples"):
        pass_at_k(3, 1, 5)
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_mean_pass_at_k_and_reported_ks():
    correct = [[True, False, False, False], [False] * 4, [True] * 4]
    assert mean_pass_at_k(correct, 1) == pytest.approx((0.25 + 0 + 1) / 3)
    assert mean_pass_at_k(correct, 4) == pytest.approx(2 / 3)
    assert ks_for(1) == [1]
    assert ks_for(8) == [1, 5, 8]
    assert ks_for(10) == [1, 5, 10]


def test_aggregates_use_only_what_was_run():
    scores = {"humaneval_plus": 0.6, "mbpp_plus": 0.4, "aime24": 0.1, "math500": 0.5, "cruxeval_o": 0.9}
    agg = aggregate_scores(scores)
    assert agg["code_avg"] == pytest.approx(0.5)
    assert agg["math_avg"] == pytest.approx(0.3)
    assert agg["total"] == pytest.approx(0.4)
    assert aggregate_scores({"cruxeval_o": 0.9}) == {}
    assert aggregate_scores({"math500": 0.5}) == {"math_avg": 0.5, "total": 0.5}


# ----- math -----
@pytest.mark.parametrize(
    "completion,expected",
    [
        ("<think>so</think> <answer>The result is \\boxed{\\frac{1}{2}}.</answer>", "\\frac{1}{2}"),
        ("<answer>3</answer> then <answer> 0.5 </answer>", "0.5"),
        ("<answer>\\boxed{x^{2}} and \\boxed{1/2}", "1/2"),  # unclosed answer runs to the end
        ("No tags, so the final \\boxed{7} wins over \\boxed{6}... \\boxed{7}", "7"),
        ("plain text only", "plain text only"),
        ("<answer>   </answer>", None),
    ],
)
def test_extract_math_answer(completion, expected):
    assert extract_math_answer(completion) == expected


@pytest.mark.parametrize(
    "prediction,gold",
    [("0.5", "1/2"), ("1/2", "0.5"), ("\\frac{1}{2}", "0.5"), ("0.5", "\\frac{1}{2}"), ("\\frac12", "1/2"),
     ("7", "7"), ("2\\sqrt{2}", "\\sqrt{8}")],
)  # fmt: skip
def test_grade_math_accepts_equivalent_forms(prediction, gold):
    assert grade_math(prediction, gold)


@pytest.mark.parametrize("prediction,gold", [("1/3", "1/2"), ("0.51", "0.5"), (None, "1"), ("", "1"), ("cat", "7")])
def test_grade_math_rejects_wrong_answers(prediction, gold):
    assert not grade_math(prediction, gold)


def test_score_math_on_a_local_file():
    items = get_benchmark("math500").load(MATH)
    assert [type(i) for i in items] == [MathItem] * 4
    assert items[0].answer == "\\frac{1}{2}" and items[0].problem.startswith("What is 1 divided")
    completions = [
        ["<answer>\\boxed{0.5}</answer>"],  # gold \frac{1}{2}
        ["<think>halve</think><answer>0.5</answer>", "<answer>\\frac{1}{2}</answer>"],  # gold 1/2
        ["The answer is \\boxed{\\frac{1}{2}}"],  # gold 0.5, no tags
        ["<answer>8</answer>"],  # gold 7
    ]
    scored = score_math(items, completions)
    assert [[s["correct"] for s in item] for item in scored] == [[True], [True, True], [True], [False]]
    assert scored[3][0]["answer"] == "8"


# ----- registry and loaders -----
def test_registry_covers_the_issue_benchmarks():
    expected = {
        "cruxeval_o", "cruxeval_i", "azr_crux_o", "azr_crux_i", "livecodebench_execution", "humaneval",
        "humaneval_plus", "mbpp_plus", "lcb_generation", "aime24", "aime25", "amc23", "math500", "olympiadbench",
        "minerva",
    }  # fmt: skip
    assert expected <= set(BENCHMARKS)
    assert get_benchmark("cruxeval_o").task_type == "deduction"
    assert get_benchmark("cruxeval_i").task_type == "abduction"
    assert parse_benchmark_list("cruxeval_o, math500,cruxeval_o") == ["cruxeval_o", "math500"]
    assert parse_benchmark_list("code") == ["humaneval_plus", "mbpp_plus", "lcb_generation"]
    with pytest.raises(KeyError, match="Unknown benchmark 'nope'"):
        parse_benchmark_list("cruxeval_o,nope")


def test_cruxeval_local_file_loads_as_triplets():
    items = get_benchmark("cruxeval_i").load(CRUX)
    assert len(items) == 4 and all(isinstance(i, ReasoningItem) for i in items)
    assert items[1].input == "[3, 4, 6, 9], 3" and items[1].output == "[1, 2, 3]" and items[1].id == "sample_1"
    assert len(get_benchmark("cruxeval_o").load(CRUX, limit=2)) == 2


def test_malformed_and_mismatched_files_name_the_problem(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"code": "def f(x): return x", "input": "1", "output": "1"}\n{not json\n')
    with pytest.raises(BenchmarkDataError, match=r"bad.jsonl:2: malformed JSON"):
        get_benchmark("cruxeval_o").load(bad)
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text('{"problem": "1+1?", "answer": "2"}\n')
    with pytest.raises(BenchmarkDataError, match=r"row 0 is not a valid 'cruxeval_o' row .*missing column 'code'"):
        get_benchmark("cruxeval_o").load(wrong)
    with pytest.raises(BenchmarkDataError, match="not found"):
        get_benchmark("cruxeval_o").load(tmp_path / "missing.jsonl")


def test_humaneval_is_bundled_offline():
    items = get_benchmark("humaneval").load(limit=3)
    assert [i.id for i in items] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert items[0].entry_point == "has_close_elements" and "def check(candidate)" in items[0].test
    assert len(get_benchmark("humaneval").load()) == 164


def test_hub_benchmark_offline_gives_a_clear_error():
    # conftest sets HF_HUB_OFFLINE=1, so `datasets` fails at once instead of retrying.
    with pytest.raises(BenchmarkDataError) as info:
        get_benchmark("aime24").load()
    message = str(info.value)
    assert "aime24" in message and "HuggingFaceH4/aime_2024" in message and "--dataset PATH" in message


def test_lcb_execution_row_becomes_a_positional_triplet():
    code = "def countPairs(nums: List[int], target: int) -> int:\n    return sum(a + b < target for a in nums for b in nums)"
    program, args = lcb_execution_to_triplet(code, "countPairs(target = 2, nums = [-1, 1, 2])")
    assert args == "[-1, 1, 2], 2"
    assert "def f(nums: List[int], target: int)" in program and program.startswith("from typing import *")
    item = get_benchmark("livecodebench_execution").convert(
        {"code": code, "input": "countPairs([0], 5)", "output": "1", "id": "x", "function_name": "countPairs"}, 0
    )
    assert (item.input, item.output, item.id) == ("[0], 5", "1", "x")
    with pytest.raises(ValueError, match="not defined"):
        lcb_execution_to_triplet(code, "other(1)")
    with pytest.raises(ValueError, match="do not match"):
        lcb_execution_to_triplet(code, "countPairs([1], 2, extra = 3)")


def test_lcb_test_cases_decode_without_running_pickled_code():
    cases = [{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]
    assert decode_lcb_tests(json.dumps(cases)) == cases
    packed = base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode()
    assert decode_lcb_tests(packed) == cases

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    hostile = base64.b64encode(zlib.compress(pickle.dumps(Evil()))).decode()
    with pytest.raises(ValueError, match="refusing to load"):
        decode_lcb_tests(hostile)


def test_lcb_generation_row_conversion():
    row = {
        "question_id": "abc301_a",
        "question_content": "Add two numbers.",
        "starter_code": "",
        "public_test_cases": json.dumps([{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]),
        "private_test_cases": base64.b64encode(
            zlib.compress(pickle.dumps(json.dumps([{"input": "5 5\n", "output": "10\n", "testtype": "stdin"}])))
        ).decode(),
        "metadata": "{}",
    }
    item = get_benchmark("lcb_generation").convert(row, 0)
    assert item.test_style == "stdin" and len(item.test_cases) == 2 and item.id == "abc301_a"
    functional = dict(row, public_test_cases=json.dumps([{"input": "[1, 2]", "output": "3", "testtype": "functional"}]),
                      private_test_cases="", metadata=json.dumps({"func_name": "add"}),
                      starter_code="class Solution:\n    def add(self, nums):\n        ")  # fmt: skip
    item = get_benchmark("lcb_generation").convert(functional, 1)
    assert (item.test_style, item.entry_point) == ("functional", "add")
    assert "class Solution" in code_generation_prompt(item, "chat")[0]["content"]


def test_mbpp_row_conversion_shows_the_first_test():
    row = {"task_id": 2, "prompt": "Write a function to add.", "test_list": ["assert add(1, 2) == 3"],
           "test": "assert add(1, 2) == 3\nassert add(0, 0) == 0", "test_imports": ["import math"]}  # fmt: skip
    item = get_benchmark("mbpp_plus").convert(row, 0)
    assert item.test_style == "script" and item.test.startswith("import math\n")
    assert "assert add(1, 2) == 3" in item.prompt


# ----- prompts and extraction -----
def test_code_reasoning_prompts_are_the_solver_prompts():
    items = get_benchmark("cruxeval_o").load(CRUX)
    deduction = build_prompts(get_benchmark("cruxeval_o"), items, "chat")
    abduction = build_prompts(get_benchmark("cruxeval_i"), items, "r1")
    assert isinstance(deduction[0], list) and "text[::-1].upper()" in deduction[0][0]["content"]
    assert "'abc'" in deduction[0][0]["content"] and "'CBA'" not in deduction[0][0]["content"]
    assert isinstance(abduction[0], str) and abduction[0].endswith("<think>")
    assert "'CBA'" in abduction[0] and "'abc'" not in abduction[0]


def test_extract_code_prefers_the_last_block_of_the_answer():
    completion = (
        "<think>```python\ndef f(): return 0\n```</think><answer>```python\ndef f(): return 1\n```\n"
        "```python\ndef f(): return 2\n```</answer>"
    )
    assert extract_code(completion) == "def f(): return 2"
    assert extract_code("Sure!\n```\nprint(1)\n```\nDone.") == "print(1)"
    assert extract_code("```python\nx = 1") == "x = 1"  # unclosed fence at the end
    assert extract_code("<answer> </answer>") is None


def test_complete_program_prepends_the_prompt_to_a_bare_body():
    item = CodeGenItem(id="t", prompt="def add(a, b):\n", starter_code="def add(a, b):\n", test_style="check",
                       test="def check(c):\n    assert c(1, 2) == 3\n", entry_point="add")  # fmt: skip
    assert complete_program(item, "    return a + b") == "def add(a, b):\n    return a + b"
    assert complete_program(item, "def add(a, b):\n    return b + a") == "def add(a, b):\n    return b + a"
    assert complete_program(item, None) is None
    typed = CodeGenItem(id="t", prompt="", starter_code="from typing import List\n\n\ndef add(a: List[int]):\n",
                        test_style="check", entry_point="add")  # fmt: skip
    assert complete_program(typed, "def add(a: List[int]):\n    return sum(a)").startswith("from typing import List\n")
    assert complete_program(typed, "from typing import List\ndef add(a):\n    return 0").count("import") == 1
    program = build_test_program(item, "def add(a, b):\n    return a + b")
    assert program.rstrip().endswith("check(add)\n    return True")


# ----- results document, table, model card -----
def _fake_results() -> dict:
    bench = get_benchmark("cruxeval_o")
    items = bench.load(CRUX, limit=2)
    samples = [[{"correct": True, "format_ok": True}, {"correct": False, "format_ok": False}],
               [{"correct": False, "format_ok": True}, {"correct": False, "format_ok": True}]]  # fmt: skip
    entry = summarize(bench, items, ["p0", "p1"], samples, num_samples=2)
    return {
        "model": "tiny",
        "settings": {"sampling": {"num_samples": 2, "temperature": 0.8}, "prompt_format": "chat"},
        "benchmarks": {"cruxeval_o": entry},
        "aggregates": {},
    }


def test_summarize_reports_accuracy_pass_at_k_and_records():
    entry = _fake_results()["benchmarks"]["cruxeval_o"]
    assert entry["n"] == 2 and entry["accuracy"] == pytest.approx(0.25)
    assert entry["pass@1"] == pytest.approx(0.25) and entry["pass@2"] == pytest.approx(0.5)
    assert entry["format_error_rate"] == pytest.approx(0.25)
    assert [r["correct"] for r in entry["records"]] == [0.5, 0.0]
    assert entry["records"][0]["reference"]["output"] == "'CBA'"


def test_results_json_and_table(tmp_path):
    from rich.console import Console

    results = _fake_results()
    path = write_results(results, tmp_path / "out" / "results.json")
    assert json.loads(path.read_text())["benchmarks"]["cruxeval_o"]["n"] == 2
    console = Console(record=True, width=160)
    console.print(results_table(results))
    text = console.export_text()
    assert "CRUXEval-O" in text and "25.0" in text and "pass@2 50.0" in text


def test_model_card_model_index_is_merged_offline():
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    old = EvalResult(task_type="text-generation", dataset_type="openai/gsm8k", dataset_name="GSM8K",
                     metric_type="accuracy", metric_value=12.0)  # fmt: skip
    stale = EvalResult(task_type="text-generation", dataset_type="cruxeval-org/cruxeval", dataset_name="CRUXEval-O",
                       dataset_config="cruxeval_o", metric_type="accuracy", metric_value=1.0)  # fmt: skip
    card = ModelCard(f"---\n{ModelCardData(model_name='m', eval_results=[old, stale]).to_yaml()}\n---\n# m\n")
    card = update_model_card(card, _fake_results(), model_name="m")
    reloaded = ModelCard(str(card))  # what the Hub would parse
    values = {(r.dataset_name, r.metric_type): r.metric_value for r in reloaded.data.eval_results}
    assert values == {("GSM8K", "accuracy"): 12.0, ("CRUXEval-O", "accuracy"): 25.0}
    fresh = update_model_card(None, _fake_results(), model_name="my-model")
    assert "model-index" in str(fresh) and fresh.data.model_name == "my-model"


# ----- callback helpers -----
@pytest.mark.parametrize("n,world", [(5, 2), (4, 2), (1, 3), (7, 4)])
def test_rank_shares_are_equal_and_cover_every_item(n, world):
    shares = [_rank_share(n, rank, world) for rank in range(world)]
    assert len({len(s) for s in shares}) == 1
    assert sorted(i for s in shares for i in s if i < n) == list(range(n))


def test_callback_metrics_ignore_duplicates():
    outcomes = [("a", 0, True, True), ("a", 1, False, False), ("a", 0, True, True), ("b", 0, False, True)]
    assert _metrics(["a", "b"], outcomes) == {
        "eval/a/accuracy": 0.5,
        "eval/a/format_error_rate": 0.5,
        "eval/b/accuracy": 0.0,
        "eval/b/format_error_rate": 0.0,
    }


# ----- CLI -----
def test_eval_cli_rejects_unknown_benchmark(capsys):
    assert main(["eval", "--benchmark", "cruxeval_o,bogus"]) == 1
    assert "Unknown benchmark 'bogus'" in capsys.readouterr().err


def test_eval_cli_offline_hub_benchmark_fails_before_loading_a_model(capsys):
    assert main(["eval", "--model", "no/such-model", "--benchmark", "minerva"]) == 1
    err = capsys.readouterr().err
    assert "minerva" in err and "math-ai/minervamath" in err and "--dataset" in err


def test_eval_cli_dataset_for_a_benchmark_not_evaluated(capsys):
    assert main(["eval", "--benchmark", "cruxeval_o", "--dataset", f"math500={MATH}"]) == 1
    assert "math500 is not among the evaluated benchmarks" in capsys.readouterr().err


def test_eval_cli_help_lists_options(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    out = capsys.readouterr().out
    for option in ("--benchmark", "--dataset", "--num-samples", "--backend", "--push-to-hub", "--limit"):
        assert option in out


def test_vllm_backend_without_vllm_says_what_to_do():
    import importlib.util

    from azr_trl.generation.generators import VLLMGenerator

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed")
    with pytest.raises(ImportError, match="--backend hf"):
        VLLMGenerator("default", tokenizer=None)
