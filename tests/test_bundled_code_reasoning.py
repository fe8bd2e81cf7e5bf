"""The code-reasoning benchmark shipped in the package (``azr_crux_o`` / ``azr_crux_i``): its rows are valid, its
outputs are the executor's, and it loads and scores with no Hub."""

from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path

import pytest

from azr_trl.cli.main import main
from azr_trl.evaluation.data import read_rows
from azr_trl.evaluation.registry import (
    AZR_CRUX_FILE,
    CODE_REASONING,
    ReasoningItem,
    get_benchmark,
    parse_benchmark_list,
)
from azr_trl.evaluation.runner import build_prompts
from azr_trl.evaluation.scoring import make_benchmark_executor, score_completions
from azr_trl.executor import ExecutorConfig
from azr_trl.tasks import Task, get_task_spec, validate_candidates


NUM_ROWS = 120
ROWS = read_rows(AZR_CRUX_FILE)


@pytest.fixture(scope="module")
def executor():
    ex = make_benchmark_executor(ExecutorConfig(timeout=3.0, workers=2))
    yield ex
    ex.close()


def _answer(tag: str, body: str) -> str:
    return f"<think>traced it</think> <answer>\n```{tag}\n{body}\n```\n</answer>"


def test_rows_are_well_formed_and_ids_unique():
    assert len(ROWS) == NUM_ROWS
    assert all(set(row) == {"id", "code", "input", "output"} for row in ROWS)
    assert [row["id"] for row in ROWS] == [f"azr-crux/{n}" for n in range(NUM_ROWS)]
    assert len({(row["code"], row["input"]) for row in ROWS}) == NUM_ROWS
    for row in ROWS:
        module = ast.parse(row["code"])
        assert [type(node) for node in module.body] == [ast.FunctionDef], row["id"]
        assert module.body[0].name == "f", row["id"]
        assert not any(isinstance(node, ast.Import | ast.ImportFrom) for node in ast.walk(module)), row["id"]
        assert 3 <= len(row["code"].splitlines()) <= 12, row["id"]
        ast.parse(f"f({row['input']})", mode="eval")  # an argument list of literals
        ast.literal_eval(row["output"])
        assert len(row["output"]) <= 80, row["id"]


def test_every_row_validates_with_exactly_its_stored_output(executor):
    spec = get_task_spec("deduction")
    candidates = [(spec, Task(task_type="deduction", program=row["code"], input=row["input"])) for row in ROWS]
    validated = validate_candidates(executor, candidates)
    problems = [
        f"{row['id']}: {verdict}" if task is None else f"{row['id']}: executor gives {task.output!r}"
        for row, (task, verdict) in zip(ROWS, validated, strict=True)
        if task is None or task.output != row["output"]
    ]
    assert problems == []


def test_both_benchmarks_load_offline_and_build_prompts(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    for name, task_type in (("azr_crux_o", "deduction"), ("azr_crux_i", "abduction")):
        bench = get_benchmark(name)
        assert (bench.category, bench.task_type, bench.source) == (CODE_REASONING, task_type, "bundled with azr-trl")
        assert bench.bundled is not None and bench.title.startswith("azr-trl code reasoning")
        items = bench.load()
        assert len(items) == NUM_ROWS and all(isinstance(item, ReasoningItem) for item in items)
        assert (items[0].id, items[0].program, items[0].output) == ("azr-crux/0", ROWS[0]["code"], ROWS[0]["output"])
        assert len(bench.load(limit=10)) == 10
        prompts = build_prompts(bench, items, "chat")
        shown = "input" if task_type == "deduction" else "output"
        for item, prompt in zip(items, prompts, strict=True):
            content = prompt[0]["content"]
            assert item.program in content and getattr(item, shown) in content
    assert parse_benchmark_list("azr_crux_o,azr_crux_i") == ["azr_crux_o", "azr_crux_i"]
    assert {"azr_crux_o", "azr_crux_i"} <= set(parse_benchmark_list(CODE_REASONING))
    assert not {"azr_crux_o", "azr_crux_i"} & set(parse_benchmark_list("code"))


def test_gold_answers_score_as_correct_and_wrong_ones_do_not(executor):
    output_bench, input_bench = get_benchmark("azr_crux_o"), get_benchmark("azr_crux_i")
    items = output_bench.load()
    scored = score_completions(
        output_bench,
        items,
        [[_answer("output", item.output), _answer("output", "'not the output'")] for item in items],
        executor=executor,
    )
    assert [[s["correct"] for s in samples] for samples in scored] == [[True, False]] * NUM_ROWS
    scored = score_completions(
        input_bench, items, [[_answer("input", item.input)] for item in items], executor=executor
    )
    assert [samples[0]["correct"] for samples in scored] == [True] * NUM_ROWS


def test_the_data_file_ships_with_the_package():
    setup = configparser.ConfigParser()
    setup.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    patterns = [p.strip() for p in setup["options.package_data"]["azr_trl"].split(",")]
    package_dir = Path(__file__).resolve().parents[1] / "azr_trl"
    assert any(AZR_CRUX_FILE.resolve() in set(package_dir.glob(p)) for p in patterns)


def test_eval_help_lists_the_bundled_benchmarks(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    out = re.sub(r"\s+", " ", capsys.readouterr().out)
    assert "azr_crux_o" in out and "azr_crux_i" in out
