"""TaskBuffer: seeding, sampling, dedup, FIFO cap, state round trip and export."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from azr_trl.selfplay.buffer import TaskBuffer
from azr_trl.tasks import Task
from azr_trl.tasks.task import zero_induction_task, zero_triplet


def _task(i: int, task_type: str = "deduction", step: int = 1) -> Task:
    return Task(task_type, f"def f(x):\n    return x + {i}\n", input=str(i), output=str(2 * i), step=step)


def _buffer(**kwargs) -> TaskBuffer:
    buf = TaskBuffer(**kwargs)
    buf.add_seeds()
    return buf


def test_zero_seeding():
    buf = _buffer()
    assert {t: buf.size(t) for t in buf.task_types} == {"deduction": 1, "abduction": 1, "induction": 1}
    ded = buf.tasks("deduction")[0]
    assert ded.program == zero_triplet().program and ded.input == "'Hello world'" and ded.pinned
    ind = buf.tasks("induction")[0]
    assert ind.inputs == zero_induction_task().inputs and ind.outputs == ind.inputs and ind.message
    # seeding again adds nothing: the zero tasks are duplicates and no buffer is empty
    assert buf.add_seeds() == 0


def test_zero_tasks_are_valid(tmp_path):
    """The hard-coded zero tasks are what the executor computes."""
    from azr_trl.executor import ExecutorConfig, make_executor
    from azr_trl.tasks import get_task_spec, validate_candidates

    with make_executor(ExecutorConfig(timeout=5.0, workers=2)) as ex:
        trip, ind = zero_triplet(), zero_induction_task()
        (t1, v1), (t2, v2) = validate_candidates(
            ex, [(get_task_spec("deduction"), trip), (get_task_spec("induction", num_inputs=6), ind)]
        )
    assert (v1, v2) == ("ok", "ok")
    assert t1.output == trip.output and t2.outputs == ind.outputs


def test_add_routes_dedups_and_sets_step():
    buf = _buffer()
    same_as_zero = Task("deduction", "def f(a):\n    # identity\n    return a\n", input="'Hello world'", output="x")
    added = buf.add([_task(1), _task(1, "abduction"), _task(1), same_as_zero], step=3)
    assert added == [True, True, False, False]
    assert buf.size("deduction") == 2 and buf.size("abduction") == 2
    assert buf.tasks("deduction")[-1].step == 3
    with pytest.raises(ValueError, match="holds"):
        TaskBuffer(task_types=["deduction"]).add([_task(1, "induction")], 1)


def test_references_without_replacement():
    buf = _buffer()
    buf.add([_task(i) for i in range(10)], step=1)
    for seed in range(20):
        refs = buf.sample_references("deduction", 6, rng=random.Random(seed))
        assert len(refs) == 6
        assert len({r.key() for r in refs}) == 6
    assert len(buf.sample_references("deduction", 50)) == 11  # capped at the pool size
    assert buf.sample_references("deduction", 0) == []


def test_induction_references_come_from_program_buffers():
    buf = _buffer()
    buf.add([_task(1, "abduction")], step=1)
    programs = {t.program for t in buf.tasks("deduction") + buf.tasks("abduction")}
    for seed in range(10):
        (ref,) = buf.sample_references("induction", 1, rng=seed)
        assert ref.program in programs and ref.task_type in ("deduction", "abduction")


def test_recency_weighting_prefers_new_tasks():
    buf = TaskBuffer(task_types=["deduction"], seed=1)
    buf.add([_task(i, step=0) for i in range(20)], step=0)
    buf.add([_task(100 + i) for i in range(20)], step=50)
    counts = Counter()
    for seed in range(200):
        for ref in buf.sample_references("deduction", 4, rng=seed, strategy="recency"):
            counts["new" if ref.step == 50 else "old"] += 1
    assert counts["new"] > 5 * counts["old"]
    with pytest.raises(ValueError, match="strategy"):
        buf.sample_references("deduction", 2, strategy="newest")


def test_max_new_prefers_latest_step_then_fills():
    buf = _buffer()
    buf.add([_task(i) for i in range(10)], step=1)
    buf.add([_task(100 + i) for i in range(3)], step=2)
    new_keys = {t.key() for t in buf.tasks("deduction")[-3:]}
    for seed in range(10):
        picks = buf.sample_solve("deduction", 5, strategy="max_new", rng=seed)
        assert len(picks) == 5
        assert new_keys <= {t.key() for t in picks}  # all three new tasks first
        assert len({t.key() for t in picks}) == 5  # then distinct fill while tasks last
    picks = buf.sample_solve("deduction", 2, strategy="max_new", rng=0)
    assert {t.key() for t in picks} <= new_keys
    # more than the buffer holds: exactly n, with repeats
    assert len(buf.sample_solve("deduction", 40)) == 40
    # uniform ignores recency
    seen = Counter(t.step for s in range(50) for t in buf.sample_solve("deduction", 2, strategy="uniform", rng=s))
    assert seen[1] > seen[2]
    with pytest.raises(ValueError, match="empty"):
        TaskBuffer(task_types=["deduction"]).sample_solve("deduction", 1)


def test_new_count_after_step_without_valid_tasks():
    buf = _buffer()
    buf.add([_task(1)], step=1)
    assert buf.new_count("deduction") == 1
    buf.add([], step=2)  # nothing valid this step
    assert buf.new_count("deduction") == 0
    assert buf.stats()["azr/buffer/deduction/new"] == 0.0


def test_fifo_cap_evicts_oldest_unpinned():
    buf = TaskBuffer(task_types=["deduction"], max_size=4)
    buf.add_seeds()  # pinned zero triplet
    buf.add([_task(i) for i in range(3)], step=1)
    buf.add([_task(3), _task(4)], step=2)
    tasks = buf.tasks("deduction")
    assert len(tasks) == 4
    assert tasks[0].pinned  # the seed survives
    assert [t.input for t in tasks[1:]] == ["2", "3", "4"]  # 0 and 1 were evicted, the newest kept
    # an evicted task may come back
    assert buf.add([_task(0)], step=3) == [True]


def test_state_round_trip_is_json_and_continues_identically(tmp_path):
    buf = _buffer(seed=7)
    buf.add([_task(i) for i in range(5)] + [_task(i, "abduction") for i in range(3)], step=1)
    buf.sample_references("deduction", 3)  # advance the RNG
    state = json.loads(json.dumps(buf.state_dict()))
    clone = TaskBuffer(seed=123)
    clone.load_state_dict(state)
    assert clone.state_dict() == buf.state_dict()
    assert [t.key() for t in clone.sample_references("deduction", 4)] == [
        t.key() for t in buf.sample_references("deduction", 4)
    ]
    assert [t.key() for t in clone.sample_solve("abduction", 3)] == [t.key() for t in buf.sample_solve("abduction", 3)]
    # the same through a file, and dedup keys survive
    path = tmp_path / "azr_buffer.json"
    buf.save(path)
    loaded = TaskBuffer.load(path)
    assert loaded.stats() == buf.stats()
    assert loaded.add([_task(1)], step=2) == [False]
    with pytest.raises(ValueError, match="task-buffer"):
        clone.load_state_dict({"format": "something else"})


def test_identical_calls_identical_buffers():
    a, b = _buffer(seed=3), _buffer(seed=3)
    for buf in (a, b):
        for step in range(1, 4):
            buf.add([_task(step * 10 + i) for i in range(4)], step=step)
            buf.sample_references("deduction", 3)
            buf.sample_solve("deduction", 4)
    assert a.state_dict() == b.state_dict()


def test_stats():
    buf = _buffer()
    buf.add([Task("deduction", "def f(x):\n    y = x\n    return [y]\n", input="1", output="[1]")], step=1)
    stats = buf.stats()
    assert stats["azr/buffer/deduction/size"] == 2.0
    assert stats["azr/buffer/deduction/new"] == 1.0
    assert stats["azr/buffer/deduction/distinct_output_types"] == 2.0  # str and list
    assert stats["azr/buffer/deduction/mean_program_lines"] == 2.5
    assert stats["azr/buffer/induction/distinct_output_types"] == 4.0  # str, int, dict, tuple


def test_export_dataset_jsonl_and_card(tmp_path):
    buf = _buffer()
    buf.add([_task(1), _task(2, "abduction")], step=1)
    ds = buf.to_dataset()
    assert len(ds) == len(buf) == 5
    assert set(ds.column_names) >= {"task_type", "program", "input", "output", "inputs", "outputs", "message", "step"}
    assert sorted(ds["task_type"]) == sorted(["deduction"] * 2 + ["abduction"] * 2 + ["induction"])
    ind = ds.filter(lambda r: r["task_type"] == "induction")[0]
    assert ind["input"] is None and ind["outputs"] == zero_induction_task().outputs
    splits = buf.to_dataset_dict()
    assert set(splits) == {"deduction", "abduction", "induction"} and len(splits["abduction"]) == 2
    card = buf.dataset_card("me/azr-tasks")
    assert card.startswith("---\n") and "absolute-zero" in card and "# me/azr-tasks" in card
    assert "2505.03335" in card and "`deduction`: 2 tasks" in card
    from huggingface_hub import DatasetCard

    assert DatasetCard(card).data.to_dict()["license"] == "apache-2.0"
    path = tmp_path / "tasks.jsonl"
    assert buf.to_jsonl(path) == 5
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(r["valid"] and r["status"] == "ok" for r in rows)
    assert {r["task_type"] for r in rows} == {"deduction", "abduction", "induction"}


def test_fingerprint_tracks_identical_buffers():
    from dataclasses import replace

    from azr_trl.selfplay.buffer import TaskBuffer
    from azr_trl.tasks.task import zero_triplet

    first, second = TaskBuffer(seed=1), TaskBuffer(seed=2)
    first.add_seeds()
    second.add_seeds()
    assert first.fingerprint() == second.fingerprint()
    # The whole state also covers the sampler: same tasks, different seeds differ; same seed and draws agree.
    assert first.state_fingerprint() != second.state_fingerprint()
    third = TaskBuffer(seed=1)
    third.add_seeds()
    assert first.state_fingerprint() == third.state_fingerprint()
    second.add([replace(zero_triplet("deduction"), input="'other'", output="'other'")], step=1)
    assert first.fingerprint() != second.fingerprint()


def test_too_long_marks_exclude_a_task_from_one_role_and_survive_a_reload():
    buf = _buffer()
    long, short = _task(1, "abduction", step=0), _task(2, "abduction", step=0)
    buf.add([long, short], step=0)
    assert buf.mark_too_long(long, "solve", "abduction")
    assert not buf.mark_too_long(long, "solve", "abduction")  # already marked
    solved = {t.key() for t in buf.sample_solve("abduction", 30, rng=1)}
    assert long.key() not in solved and short.key() in solved
    # Only that role: the task is still a reference for abduction propose prompts, until marked for them too.
    assert long.key() in {t.key() for seed in range(20) for t in buf.sample_references("abduction", 2, rng=seed)}
    buf.mark_too_long(long, "propose", "abduction")
    assert long.key() not in {t.key() for seed in range(20) for t in buf.sample_references("abduction", 3, rng=seed)}
    # An induction propose prompt shows the program only: its references are judged apart.
    assert long.key() in {t.key() for seed in range(40) for t in buf.sample_references("induction", 1, rng=seed)}

    restored = TaskBuffer()
    restored.load_state_dict(json.loads(json.dumps(buf.state_dict())))
    assert restored.is_too_long(long, "solve", "abduction") and restored.is_too_long(long, "propose", "abduction")
    assert not restored.is_too_long(long, "propose", "induction")
    assert restored.state_dict() == buf.state_dict()

    # Every task of a type marked: nothing to draw (the trainer then falls back to the zero task).
    for task in buf.tasks("abduction"):
        buf.mark_too_long(task, "solve", "abduction")
        buf.mark_too_long(task, "propose", "abduction")
    assert buf.sample_solve("abduction", 3) == []
    assert buf.sample_references("abduction", 3) == []
    with pytest.raises(ValueError, match="role"):
        buf.mark_too_long(long, "evaluate", "abduction")
