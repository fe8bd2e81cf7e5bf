"""Seed generation (`azr-trl seed`): collection, dedup, resume, and every written row re-validating."""

from __future__ import annotations

import json
import re

import pytest

from azr_trl.seeding.generation import generate_seed_tasks
from azr_trl.seeding.seed_files import load_seed_file
from azr_trl.tasks import Task, get_task_spec, prompt_text
from azr_trl.tasks.task import zero_triplet


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


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """The tiny in-code model and its ChatML tokenizer, saved where `--model` can load them."""
    from tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"))


def test_seed_cli_generates_through_the_shared_hf_generator(tmp_path, tiny_model_dir, monkeypatch, capsys):
    """`azr-trl seed` samples with evaluation's `HFGenerator`: one batch per round, chat prompts (the tokenizer has a
    template), the running random stream; a run that collects nothing exits 1 and names the verdicts."""
    from azr_trl.cli.main import main
    from azr_trl.generation.generators import HFGenerator

    calls = []
    generate = HFGenerator.generate

    def spy(self, prompts, settings, progress=True, desc="generate"):
        completions = generate(self, prompts, settings, progress=progress, desc=desc)
        calls.append((list(prompts), settings, completions))
        return completions

    monkeypatch.setattr(HFGenerator, "generate", spy)
    out = tmp_path / "seeds.jsonl"
    args = [
        "seed", "--model", str(tiny_model_dir), "--output", str(out), "--num-tasks", "2", "--batch-size", "3",
        "--max-new-tokens", "8", "--max-rounds", "2", "--patience", "5", "--no-progress", "--workers", "1",
        "--timeout", "3", "--seed", "7",
    ]  # fmt: skip
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"{out}: 0 seed tasks (+0) in 2 rounds, 6 proposals (" in err
    assert "error: Seeding collected 0 of 2 seed tasks (at least 2 needed) in 2 rounds: 6 proposals, 0% valid" in err
    assert out.exists() and out.read_text() == ""
    assert len(calls) == 2
    for prompts, settings, completions in calls:
        assert len(prompts) == 3 and all(isinstance(p, list) and p[-1]["role"] == "user" for p in prompts)
        assert (settings.max_new_tokens, settings.temperature, settings.seed) == (8, 1.0, None)
        assert len(completions) == 3 and all(len(samples) == 1 for samples in completions)
    # The same first round again: `--seed` makes the run repeat.
    first = calls[0][2]
    calls.clear()
    assert main(args) == 1
    assert calls[0][2] == first


def test_seed_cli_refuses_bad_sampling_and_a_missing_vllm(tmp_path, tiny_model_dir, capsys):
    import importlib.util

    from azr_trl.cli.main import main

    args = ["seed", "--model", str(tiny_model_dir), "--output", str(tmp_path / "s.jsonl"), "--num-tasks", "1"]
    assert main([*args, "--temperature", "-1"]) == 1
    assert "error: temperature must be >= 0, got -1.0" in capsys.readouterr().err
    if importlib.util.find_spec("vllm") is None:
        assert main([*args, "--backend", "vllm"]) == 1
        err = capsys.readouterr().err
        assert "error: --backend vllm needs the 'vllm' package" in err and "cannot load model" not in err
    assert not (tmp_path / "s.jsonl").exists()


def test_prompts_show_only_the_references_that_fit_the_budget(tmp_path, executor):
    """With a prompt budget, a reference that would push a propose prompt over it is left out (the longest first)."""
    from azr_trl.seeding.generation import check_seed_prompt_budget, seed_specs
    from azr_trl.tasks.prompt_budget import PromptBudget

    out = tmp_path / "seeds.jsonl"
    long_program = "def f(s):\n    return s + " + repr("x" * 400) + "\n"
    out.write_text(json.dumps({"program": long_program, "input": "'a'"}) + "\n")
    budget = PromptBudget(2500, lambda prompt: len(prompt_text(prompt)))  # characters stand in for tokens here
    zero_length = budget.length(get_task_spec("abduction").propose_prompt([zero_triplet()], "chat"))
    assert zero_length < 2500 < budget.length(get_task_spec("deduction").propose_prompt([zero_triplet()] * 3, "chat"))
    proposer = ScriptedProposer()
    report = generate_seed_tasks(
        proposer, executor, out, num_tasks=6, batch_size=3, num_references=3, progress=False, prompt_budget=budget
    )
    assert report.triplets.count == 6
    prompts = [prompt for call in proposer.calls for prompt in call]
    assert all(budget.length(prompt) <= 2500 for prompt in prompts)
    assert not any("x" * 400 in prompt_text(prompt) for prompt in prompts)
    # Without the budget the same run shows the long program.
    proposer = ScriptedProposer()
    generate_seed_tasks(proposer, executor, out, num_tasks=7, batch_size=3, num_references=3, progress=False)
    assert any("x" * 400 in prompt_text(prompt) for call in proposer.calls for prompt in call)
    # A budget that not even the zero triplet's prompt fits is refused (the CLI checks before generating anything).
    # (every proposing task type counts: here the deduction prompt fits and the abduction one does not)
    too_small = PromptBudget(zero_length - 1, budget.length)
    with pytest.raises(ValueError, match=f"abduction propose prompt has {zero_length} tokens, more than the "):
        check_seed_prompt_budget(too_small, seed_specs(), "chat", induction=False)
    check_seed_prompt_budget(budget, seed_specs(), "chat", induction=True)  # the zero prompts fit the larger one


def test_seed_cli_prompts_fit_the_model(tmp_path, monkeypatch, capsys):
    """The seed CLI keeps its prompts within the model's positions minus --max-new-tokens."""
    from transformers import AutoTokenizer

    from azr_trl.cli.main import main
    from azr_trl.generation.generators import HFGenerator, prompt_length

    from tiny import make_tiny_model, save_tiny_model

    folder = save_tiny_model(tmp_path / "model")  # the model's config decides how the tokenizer loads
    tokenizer = AutoTokenizer.from_pretrained(folder)  # counts as the CLI will
    zero = {
        task_type: prompt_length(tokenizer, get_task_spec(task_type).propose_prompt([zero_triplet()], "chat"))
        for task_type in ("deduction", "abduction")
    }
    positions = max(zero.values()) + 100 + 8  # room for the zero prompts and 8 new tokens, not for a long reference
    make_tiny_model(tokenizer, max_position_embeddings=positions).save_pretrained(folder)
    prompts = []
    generate = HFGenerator.generate

    def spy(self, batch, settings, progress=True, desc="generate"):
        prompts.extend(batch)
        return generate(self, batch, settings, progress=progress, desc=desc)

    monkeypatch.setattr(HFGenerator, "generate", spy)
    out = tmp_path / "seeds.jsonl"
    long_program = "def f(s):\n    return s + " + repr("x" * 600) + "\n"
    out.write_text(json.dumps({"program": long_program, "input": "'a'"}) + "\n")
    args = [
        "seed", "--model", str(folder), "--output", str(out), "--num-tasks", "3", "--batch-size", "2",
        "--max-rounds", "2", "--num-references", "2", "--no-progress", "--workers", "1",
    ]  # fmt: skip
    assert main([*args, "--max-new-tokens", "8"]) == 1  # the random tiny model proposes nothing valid
    assert len(prompts) == 4
    assert all(prompt_length(tokenizer, prompt) <= positions - 8 for prompt in prompts)
    assert not any("x" * 600 in prompt_text(prompt) for prompt in prompts)
    capsys.readouterr()
    prompts.clear()
    assert main([*args, "--max-new-tokens", str(positions - zero["deduction"] + 1)]) == 1
    err = capsys.readouterr().err
    expected = (
        f"The shortest deduction propose prompt has {zero['deduction']} tokens, more than the {zero['deduction'] - 1}"
    )
    assert f"error: {expected}" in err
    assert prompts == []
