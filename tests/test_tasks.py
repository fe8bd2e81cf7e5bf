"""Prompt rendering of the six prompt kinds in both formats, validation glue and solver verification."""

from __future__ import annotations

import re

import pytest

from azr_trl.executor.types import ExecJob, ExecResult, Verdict
from azr_trl.tasks import (
    PROMPT_FORMATS,
    TASK_TYPES,
    SolverAnswer,
    Task,
    get_task_spec,
    prompt_text,
    split_pairs,
    validate_candidates,
)
from azr_trl.tasks.triplet import verify_deduction


PROGRAM_A = "def f(word, n):\n    return word[n:] + word[:n]\n"
PROGRAM_B = "def f(xs):\n    return sorted(set(xs))\n"
REFS = [
    Task("deduction", PROGRAM_A, input="'hello', 2", output="'llohe'"),
    Task("deduction", PROGRAM_B, input="[3, 1, 3]", output="[1, 3]"),
]
INDUCTION_TASK = Task(
    "induction",
    PROGRAM_A,
    inputs=["'abc', 1", "'hello', 2", "'xy', 0", "'rotate', 3"],
    outputs=["'bca'", "'llohe'", "'xy'", "'aterot'"],
    message="Rotate the word.",
)


def _check_format(prompt, fmt):
    if fmt == "r1":
        assert isinstance(prompt, str)
        assert prompt.startswith("A conversation between User and Assistant.")
        assert prompt.endswith("Assistant: <think>")
        assert "User: " in prompt
    else:
        assert isinstance(prompt, list) and len(prompt) == 1
        assert prompt[0]["role"] == "user"
        assert "<answer>" in prompt[0]["content"] and "<think>" in prompt[0]["content"]
        assert not prompt[0]["content"].endswith("Assistant: <think>")
    return prompt_text(prompt)


@pytest.mark.parametrize("fmt", PROMPT_FORMATS)
@pytest.mark.parametrize("task_type", ["deduction", "abduction"])
def test_triplet_propose_prompt(task_type, fmt):
    spec = get_task_spec(task_type, banned_modules=("random", "os.path"))
    text = _check_format(spec.propose_prompt(REFS, fmt), fmt)
    for section in (
        "## Task:",
        "### Program Requirements",
        "### Input Requirements",
        "### Answer Format",
        "### What Makes a Good Task",
        "### Reference Programs",
    ):
        assert section in text
    assert "```python" in text and "```input" in text
    assert "random, os.path" in text  # banned words listed
    # K references, each with program, input and output inside <snippet_i>
    for i, ref in enumerate(REFS):
        block = re.search(rf"<snippet_{i}>\n(.*?)\n</snippet_{i}>", text, re.S)
        assert block, f"snippet {i} missing"
        body = block.group(1)
        assert ref.program.strip() in body
        assert f"```input\n{ref.input}\n```" in body
        assert f"```output\n{ref.output}\n```" in body
    assert "<snippet_2>" not in text
    # the two task types ask different things
    assert ("output it produces" in text) == (task_type == "deduction")


def test_triplet_propose_prompts_differ_only_in_goal():
    ded = prompt_text(get_task_spec("deduction").propose_prompt(REFS, "r1"))
    abd = prompt_text(get_task_spec("abduction").propose_prompt(REFS, "r1"))
    assert ded != abd
    assert ded.split("### Reference Programs")[1] == abd.split("### Reference Programs")[1]


@pytest.mark.parametrize("fmt", PROMPT_FORMATS)
def test_induction_propose_prompt(fmt):
    spec = get_task_spec("induction", num_inputs=7)
    text = _check_format(spec.propose_prompt([REFS[0]], fmt), fmt)
    assert "Choose 7 Inputs" in text and "exactly 7 different inputs" in text
    assert "### Input Requirements" in text and "### Message Requirements" in text
    assert "```message" in text
    # the program block ends with the input marker
    assert f"```python\n{PROGRAM_A.strip()}\n\nf(<|YOUR INPUT GOES HERE|>)\n```" in text
    assert "<snippet_" not in text
    with pytest.raises(ValueError):
        spec.propose_prompt([], fmt)


@pytest.mark.parametrize("fmt", PROMPT_FORMATS)
def test_deduction_solve_prompt(fmt):
    task = REFS[0]
    text = _check_format(get_task_spec("deduction").solve_prompt(task, fmt), fmt)
    assert "# Task: Predict the Output" in text
    assert f"```python\n{task.program.strip()}\n```" in text
    assert f"```input\n{task.input}\n```" in text
    assert task.output not in text  # the gold output is never shown
    assert "```output" in text  # answer format


@pytest.mark.parametrize("fmt", PROMPT_FORMATS)
def test_abduction_solve_prompt(fmt):
    task = REFS[0]
    text = _check_format(get_task_spec("abduction").solve_prompt(task, fmt), fmt)
    assert "# Task: Find an Input" in text
    assert f"```python\n{task.program.strip()}\n```" in text
    assert f"```output\n{task.output}\n```" in text
    assert task.input not in text  # the gold input is never shown


@pytest.mark.parametrize("fmt", PROMPT_FORMATS)
def test_induction_solve_prompt_hides_half(fmt):
    text = _check_format(get_task_spec("induction").solve_prompt(INDUCTION_TASK, fmt), fmt)
    visible, hidden = split_pairs(INDUCTION_TASK)
    assert len(visible) == 2 and len(hidden) == 2
    for i, (src, out) in enumerate(visible):
        assert f"```input_{i}\n{src}\n```" in text and f"```output_{i}\n{out}\n```" in text
    for src, out in hidden:
        assert src not in text and out not in text
    assert "```input_2" not in text
    assert "```message\nRotate the word.\n```" in text
    assert "word[n:]" not in text  # the program is never shown
    assert "# Program Requirements" in text
    assert "named `f`" in text


def test_unknown_format_and_type():
    with pytest.raises(ValueError, match="prompt format"):
        get_task_spec("deduction").solve_prompt(REFS[0], "plain")
    with pytest.raises(ValueError, match="task type"):
        get_task_spec("sorting")


# ----- validation glue (no executor needed: results are built by hand) -----


def test_triplet_validation_glue():
    spec = get_task_spec("abduction")
    cand = Task("abduction", PROGRAM_B, input="[2, 2, 1]")
    assert spec.validation_jobs(cand) == [ExecJob(program=PROGRAM_B, input="[2, 2, 1]")]
    task, verdict = spec.finish_validation(cand, [ExecResult(Verdict.OK, output="[1, 2]")])
    assert verdict == "ok" and task.output == "[1, 2]" and task.task_type == "abduction"
    assert cand.output is None  # the candidate is not mutated
    assert spec.finish_validation(cand, [ExecResult(Verdict.TIMEOUT, error="timed out")]) == (None, "timeout")


def test_induction_validation_glue_any_failure_invalidates():
    spec = get_task_spec("induction", num_inputs=4)
    cand = Task("induction", PROGRAM_A, inputs=list(INDUCTION_TASK.inputs), message="m")
    jobs = spec.validation_jobs(cand)
    assert [j.input for j in jobs] == cand.inputs and all(j.program == PROGRAM_A for j in jobs)
    ok = [ExecResult(Verdict.OK, output=o) for o in INDUCTION_TASK.outputs]
    task, verdict = spec.finish_validation(cand, ok)
    assert verdict == "ok" and task.outputs == INDUCTION_TASK.outputs and task.message == "m"
    bad = ok[:2] + [ExecResult(Verdict.RUNTIME_ERROR, error="IndexError")] + ok[3:]
    assert spec.finish_validation(cand, bad) == (None, "runtime_error")


def test_task_key_dedups_layout_not_content():
    a = Task("deduction", "def f(x):\n    return x+1\n", input="[1,2]")
    b = Task("abduction", "def f(x):\n    # add one\n    return (x + 1)\n", input="[1, 2]", output="x")
    c = Task("deduction", "def f(x):\n    return x+1\n", input="[1, 3]")
    assert a.key() == b.key() != c.key()
    assert INDUCTION_TASK.key() != Task("induction", PROGRAM_A, inputs=INDUCTION_TASK.inputs[::-1]).key()


# ----- with the real executor -----


@pytest.fixture(scope="module")
def executor():
    from azr_trl.executor import ExecutorConfig, make_executor

    ex = make_executor(ExecutorConfig(timeout=5.0, workers=2))
    yield ex
    ex.close()


def _complete(blocks: str) -> str:
    return f" reasoning</think>\n<answer>\n{blocks}\n</answer>"


def test_propose_validate_solve_roundtrip(executor):
    """Every task type end to end: parse a proposal, validate it, render the solve prompt, verify answers."""
    ded, abd, ind = (get_task_spec(t, num_inputs=4) for t in TASK_TYPES)
    prop_d = ded.parse_proposal(_complete(f"```python\n{PROGRAM_A}```\n```input\n'hello', 2\n```"), REFS)
    prop_a = abd.parse_proposal(_complete(f"```python\n{PROGRAM_B}```\n```input\n[3, 1, 3]\n```"), REFS)
    inputs = "".join(f"```input\n{s}\n```\n" for s in INDUCTION_TASK.inputs)
    prop_i = ind.parse_proposal(_complete(inputs + "```message\nRotate.\n```"), [REFS[0]])
    bad = ded.parse_proposal(_complete("```python\ndef f(x):\n    return 1 / 0\n```\n```input\n1\n```"), REFS)
    results = validate_candidates(
        executor,
        [(ded, prop_d.candidate), (abd, prop_a.candidate), (ind, prop_i.candidate), (ded, bad.candidate)],
    )
    (task_d, v_d), (task_a, v_a), (task_i, v_i), (task_bad, v_bad) = results
    assert (v_d, v_a, v_i) == ("ok", "ok", "ok")
    assert task_d.output == "'llohe'" and task_a.output == "[1, 3]"
    assert task_i.outputs == INDUCTION_TASK.outputs
    assert task_bad is None and v_bad == "runtime_error"

    right = [SolverAnswer(True, "'llohe'"), SolverAnswer(True, '"llohe"'), SolverAnswer(True, "'hello'")]
    assert ded.verify(executor, [task_d] * 3, right) == [True, True, False]
    assert ded.verify(executor, [task_d], [SolverAnswer(False, None)]) == [False]
    # abduction accepts any input that reproduces the output
    answers = [SolverAnswer(True, "[1, 3, 1]"), SolverAnswer(True, "[1, 3]"), SolverAnswer(True, "[2]")]
    assert abd.verify(executor, [task_a] * 3, answers) == [True, True, False]
    assert abd.verify(executor, [task_a], [SolverAnswer(True, "__import__('os')")]) == [False]
    good = ind.parse_answer(_complete("```python\ndef f(w, k):\n    return w[k:] + w[:k]\n```"))
    half = ind.parse_answer(_complete("```python\ndef f(w, k):\n    return 'llohe' if k == 2 else w\n```"))
    assert ind.verify(executor, [task_i, task_i], [good, half]) == [True, False]
    assert ind.score(executor, [task_i, task_i], [good, half]) == [1.0, 0.5]


def test_verify_deduction():
    assert verify_deduction(["[1, 2]", None, "True", "'a'"], ["[1, 2]", "1", "1", "'b'"]) == [
        True,
        False,
        False,
        False,
    ]
    with pytest.raises(ValueError):
        verify_deduction(["1"], ["1", "2"])
