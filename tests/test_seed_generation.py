"""Seed generation (`azr-trl seed`): collection, dedup, resume, and every written row re-validating."""

from __future__ import annotations

import json
import re

import pytest

from azr_trl.seeding import generate_seed_tasks, load_seed_file
from azr_trl.tasks import Task, prompt_text


@pytest.fixture(scope="module")
def executor():
    from azr_trl.executor import ExecutorConfig, make_executor

    ex = make_executor(ExecutorConfig(timeout=3.0, workers=2))
    yield ex
    ex.close()


class ScriptedProposer:
    """Stands in for a model that proposes real tasks (the 135M default model almost never does)."""

    def __init__(self):
        self.calls: list[list] = []
        self.counter = 0

    def __call__(self, prompts):
        self.calls.append(prompts)
        out = []
        for prompt in prompts:
            text = prompt_text(prompt)
            if "Choose 4 Inputs" in text:
                inputs = "".join(f"```input\n{i}\n```\n" for i in (1, 2, 3, 4))
                out.append(f"<answer>\n{inputs}```message\nSomething with numbers.\n```\n</answer>")
                continue
            self.counter += 1
            k = self.counter
            if k % 4 == 0:  # a duplicate of an earlier proposal, laid out differently
                program = f"def f(x):\n    # again\n    return x + {k - 1}\n"
                out.append(f"<answer>\n```python\n{program}```\n```input\n{k - 1}\n```\n</answer>")
            elif k % 5 == 0:  # invalid: raises on its input
                out.append(f"<answer>\n```python\ndef f(x):\n    return x // 0\n```\n```input\n{k}\n```\n</answer>")
            elif k % 7 == 0:  # not a proposal at all
                out.append("I am not sure what to write.")
            else:
                out.append(f"<answer>\n```python\ndef f(x):\n    return x + {k}\n```\n```input\n{k}\n```\n</answer>")
        return out


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _keys(path, executor, task_type):
    tasks, errors = load_seed_file(path, executor, task_types=(task_type,))
    assert errors == []  # every written row re-validates
    return [t.key() for t in tasks]


def test_collects_dedups_and_resumes(tmp_path, executor):
    out, ind_out = tmp_path / "seeds.jsonl", tmp_path / "seeds_f.jsonl"
    proposer = ScriptedProposer()
    report = generate_seed_tasks(
        proposer,
        executor,
        out,
        num_tasks=6,
        induction_output=ind_out,
        num_induction=2,
        batch_size=4,
        num_references=3,
        num_inputs=4,
        progress=False,
    )
    rows = _rows(out)
    assert len(rows) == 6 == report.triplets.count == report.triplets.added
    assert all(set(r) >= {"program", "input", "output", "valid", "status"} and r["valid"] for r in rows)
    keys = _keys(out, executor, "deduction")
    assert len(set(keys)) == 6
    verdicts = report.triplets.verdicts
    assert verdicts["duplicate"] >= 1 and verdicts["runtime_error"] >= 1 and verdicts["missing_answer"] >= 1
    # one verdict per proposal; 6 new tasks are "ok"
    assert sum(verdicts.values()) == report.triplets.proposals == 4 * report.triplets.rounds
    assert verdicts["ok"] >= 6 and report.triplets.stop == "reached the target"
    # the references grow: later prompts show collected programs, first ones only the zero triplet
    first = prompt_text(proposer.calls[0][0])
    assert re.findall(r"<snippet_\d+>", first) == ["<snippet_0>"]
    assert any(re.search(r"return x \+ \d+\n", prompt_text(p)) for p in proposer.calls[1])
    # induction items on collected programs
    ind_rows = _rows(ind_out)
    assert len(ind_rows) == 2 == report.induction.count
    assert all(len(r["inputs"]) == 4 and len(r["outputs"]) == 4 and r["message"] for r in ind_rows)
    assert len(set(_keys(ind_out, executor, "induction"))) == 2

    # resume: the existing rows stay first, new ones are appended, nothing is duplicated
    # (the new proposer repeats the first run's proposals before it reaches new ones: give it the rounds for that)
    report2 = generate_seed_tasks(
        ScriptedProposer(), executor, out, num_tasks=9, batch_size=4, num_references=3, patience=5, progress=False
    )
    rows2 = _rows(out)
    assert rows2[:6] == rows and len(rows2) == 9
    assert report2.triplets.added == 3
    assert len(set(_keys(out, executor, "deduction"))) == 9
    # already complete: nothing is generated
    idle = ScriptedProposer()
    assert generate_seed_tasks(idle, executor, out, num_tasks=5, progress=False).triplets.added == 0
    assert idle.calls == []


def test_max_rounds_bounds_generation(tmp_path, executor):
    def silent(prompts):
        return ["no idea"] * len(prompts)

    out = tmp_path / "seeds.jsonl"
    report = generate_seed_tasks(
        silent, executor, out, num_tasks=3, batch_size=2, max_rounds=3, patience=10, progress=False
    )
    phase = report.triplets
    assert phase.proposals == 6 and phase.count == 0 and phase.rounds == 3
    assert phase.stop == "the maximum of 3 rounds"
    assert out.exists() and out.read_text() == ""


def test_patience_stops_a_model_that_proposes_nothing_valid(tmp_path, executor):
    """The default stop rule ends a hopeless run; the message names the verdicts; a rerun continues from the file."""
    calls = []

    def weak(prompts):
        calls.append(len(prompts))
        if len(calls) == 1:  # one valid task in the first round, then only broken proposals
            good = "<answer>\n```python\ndef f(x):\n    return x * 3\n```\n```input\n4\n```\n</answer>"
            return [good] + ["I think the answer is 42."] * (len(prompts) - 1)
        return ["<answer>\n```python\ndef f(x):\n    return x +\n```\n```input\n1\n```\n</answer>"] * len(prompts)

    out = tmp_path / "seeds.jsonl"
    ind_out = tmp_path / "ind.jsonl"
    report = generate_seed_tasks(
        weak, executor, out, num_tasks=4, induction_output=ind_out, batch_size=3, patience=2, progress=False
    )
    phase = report.triplets
    assert len(calls) == 3 and phase.rounds == 3  # 1 productive round, then 2 idle ones
    assert phase.count == 1 and phase.stop == "no new valid task in 2 rounds in a row"
    assert dict(phase.verdicts) == {"ok": 1, "missing_answer": 2, "syntax_error": 6}
    assert report.induction is None and not ind_out.exists()  # too few triplets: no induction phase
    message = phase.shortfall(4)
    assert "collected 1 of 4 seed tasks" in message and "syntax_error 6, missing_answer 2" in message
    assert str(out) in message and phase.shortfall(1) is None
    assert len(_rows(out)) == 1
    # A rerun continues from the file and counts its rows as existing.
    again = generate_seed_tasks(weak, executor, out, num_tasks=4, batch_size=3, patience=1, progress=False)
    assert again.triplets.existing == 1 and again.triplets.count == 1


@pytest.mark.slow
def test_seed_cli_with_default_model(tmp_path, executor, default_model_path, capsys):
    """`azr-trl seed --model default`: a bounded run, twice; whatever is written re-validates and never repeats.

    Kept small (one round of 2 proposals x 32 tokens per run, ~15 s each on an idle 2-core machine): the 135M model
    almost never writes a valid task, so the pre-written row is what makes the resume checks meaningful. A run that
    ends short of --num-tasks exits with status 1 and names the verdicts of its proposals.
    """
    from azr_trl.cli.main import main

    out = tmp_path / "seeds.jsonl"
    # A valid row from an "earlier run" that must survive and not be re-added.
    known = Task("deduction", "def f(s):\n    return s[::-1]\n", input="'abc'", output="'cba'")
    out.write_text(json.dumps({"program": known.program, "input": known.input, "output": known.output}) + "\n")
    args = [
        "seed", "--model", "default", "--output", str(out), "--num-tasks", "3", "--batch-size", "2",
        "--max-new-tokens", "32", "--max-rounds", "1", "--num-references", "2", "--no-progress", "--timeout", "3",
    ]  # fmt: skip
    status = main(args)
    first = _rows(out)
    assert status == (0 if len(first) == 3 else 1)
    if status:
        err = capsys.readouterr().err
        assert f"error: Seeding collected {len(first)} of 3 seed tasks" in err and "Proposal verdicts: " in err
    main(args)  # resume
    rows = _rows(out)
    assert rows[: len(first)] == first and rows[0]["program"] == known.program
    assert len(rows) <= 3
    keys = _keys(out, executor, "deduction")
    assert len(keys) == len(rows) == len(set(keys))
    assert main(["seed", "--model", str(tmp_path / "no-such-model"), "--output", str(out), "--num-tasks", "1"]) == 1
