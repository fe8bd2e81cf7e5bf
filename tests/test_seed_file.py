"""Seed-file loading: every row re-validated, bad rows reported by line number, never silently dropped."""

from __future__ import annotations

import json

import pytest

from azr_trl.selfplay.buffer import TaskBuffer, load_seed_file


GOOD_TRIPLET = {"program": "def f(s, n):\n    return s * n\n", "input": "'ab', 2", "output": "'abab'"}
GOOD_INDUCTION = {
    "program": "def f(x):\n    return x * 2\n",
    "inputs": ["1", "'a'", "[3]", "2.5"],
    "outputs": ["2", "'aa'", "[3, 3]", "5.0"],
    "message": "Doubles its argument.",
}


@pytest.fixture(scope="module")
def executor():
    from azr_trl.executor import ExecutorConfig, make_executor

    ex = make_executor(ExecutorConfig(timeout=3.0, workers=2))
    yield ex
    ex.close()


def _write(path, lines):
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_seed_file_with_bad_lines(tmp_path, executor):
    path = _write(
        tmp_path / "seeds.jsonl",
        [
            GOOD_TRIPLET,  # 1
            "{not json",  # 2
            {"program": "def f(x):\n    return 1 / x\n", "input": "0"},  # 3: runtime error
            "",  # 4: blank lines are skipped, numbering continues
            {"program": "def f(x):\n    return x\n", "input": "x + 1"},  # 5: not a literal
            {"program": "def f(x):\n    return x\n", "input": "1", "output": "2"},  # 6: wrong stored output
            {"input": "1"},  # 7: no program
            [1, 2],  # 8: not an object
            GOOD_INDUCTION,  # 9
            {**GOOD_INDUCTION, "inputs": ["1", "'a'", "None", "2"], "outputs": None},  # 10: None * 2 fails
            {"program": "import time\ndef f(x):\n    return x\n", "input": "1"},  # 11: banned import
            {"program": "def f(x):\n    return x\n", "input": "1", "task_type": "abduction"},  # 12: one buffer
            {"program": "def f(x):\n    return x\n", "inputs": "1, 2"},  # 13: inputs not a list
            {"program": "def f(x):\n    return x\n", "input": 5},  # 14: input not a string
        ],
    )
    tasks, errors = load_seed_file(path, executor)
    lines = sorted(int(e.split(":")[1]) for e in errors)
    assert lines == [2, 3, 5, 6, 7, 8, 10, 11, 13, 14]
    assert all(e.startswith(f"{path}:") for e in errors)
    by_line = {int(e.split(":")[1]): e for e in errors}
    assert "malformed JSON" in by_line[2]
    assert "runtime_error" in by_line[3]
    assert "invalid_input" in by_line[5]
    assert "differs" in by_line[6]
    assert "program" in by_line[7]
    assert "banned_import" in by_line[11]
    kinds = sorted((t.task_type, t.input or t.inputs[0]) for t in tasks)
    assert kinds == [("abduction", "'ab', 2"), ("abduction", "1"), ("deduction", "'ab', 2"), ("induction", "1")]
    assert all(t.pinned and t.step == 0 for t in tasks)
    triplet = next(t for t in tasks if t.task_type == "deduction")
    assert triplet.output == "'abab'"
    induction = next(t for t in tasks if t.task_type == "induction")
    assert induction.outputs == GOOD_INDUCTION["outputs"] and induction.message == GOOD_INDUCTION["message"]


def test_buffer_seeding_from_files(tmp_path, executor):
    path = _write(tmp_path / "seeds.jsonl", [GOOD_TRIPLET, "oops"])
    buf = TaskBuffer(task_types=["deduction", "abduction", "induction"])
    added, errors = buf.seed_from_files([path], executor)
    assert errors == [f"{path}:2: malformed JSON (Expecting value at column 1)"]
    # the triplet goes to both buffers; the empty induction buffer gets the zero item
    assert added == 3 and buf.size("deduction") == buf.size("abduction") == buf.size("induction") == 1
    assert buf.tasks("deduction")[0].output == "'abab'"
    # only the requested task types are loaded
    only = TaskBuffer(task_types=["deduction"])
    only.seed_from_files([path], executor)
    assert only.task_types == ("deduction",) and only.size("deduction") == 1


def test_exported_buffer_is_a_valid_seed_file(tmp_path, executor):
    buf = TaskBuffer()
    buf.add_seeds()
    path = tmp_path / "export.jsonl"
    buf.to_jsonl(path)
    tasks, errors = load_seed_file(path, executor)
    assert errors == []
    assert sorted(t.key() for t in tasks) == sorted(t.key() for ty in buf.task_types for t in buf.tasks(ty))
    # so is the datasets export (full-schema rows with nulls and empty lists)
    ds_path = tmp_path / "export_ds.jsonl"
    buf.to_dataset().to_json(ds_path)
    tasks_ds, errors_ds = load_seed_file(ds_path, executor)
    assert errors_ds == [] and sorted(t.key() for t in tasks_ds) == sorted(t.key() for t in tasks)


def test_unusable_seed_files(tmp_path, executor):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_seed_file(tmp_path / "missing.jsonl", executor)
    bad = _write(tmp_path / "bad.jsonl", ["{", {"program": "def f(x):\n    return x\n"}])
    with pytest.raises(ValueError, match=r"No valid seed task.*bad.jsonl:1"):
        TaskBuffer().seed_from_files([bad], executor)


def test_builtin_seed_files_are_valid(executor):
    from azr_trl.seeding.seed_files import resolve_seed_files

    paths = resolve_seed_files(["builtin"])
    assert [p.name for p in paths] == ["seed_tasks.jsonl", "seed_induction.jsonl"]
    for path in paths:
        tasks, errors = load_seed_file(path, executor)
        assert errors == [] and tasks
    buf = TaskBuffer()
    added, errors = buf.seed_from_files(["builtin"], executor)
    assert errors == []
    assert buf.size("deduction") == buf.size("abduction") == 24 and buf.size("induction") == 6
    assert buf.stats()["azr/buffer/deduction/distinct_output_types"] >= 5
