"""Parsers over realistic well-formed and malformed completions (tests/fixtures/completions/*.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from azr_trl.executor import ExecJob
from azr_trl.tasks import Task, get_task_spec
from azr_trl.tasks.base import PASTED_ENTRY, call_job
from azr_trl.tasks.parsing import (
    ProgramOptions,
    grades_on_one_line,
    input_shape,
    pastes_into_call,
    prepare_input,
    prepare_program,
    program_shape,
)
from azr_trl.tasks.reading import fenced_blocks, get_reader


FIXTURES = Path(__file__).parent / "fixtures" / "completions"


def _load(name):
    return yaml.safe_load((FIXTURES / name).read_text())


TRIPLET_CASES = _load("propose_triplet.yaml")
INDUCTION = _load("propose_induction.yaml")
SOLVE_CASES = _load("solve.yaml")


@pytest.mark.parametrize("task_type", ["deduction", "abduction"])
@pytest.mark.parametrize("case", TRIPLET_CASES, ids=[c["name"] for c in TRIPLET_CASES])
def test_triplet_proposal_fixtures(case, task_type):
    spec = get_task_spec(task_type, answer_extraction=case.get("extraction", "reference"))
    proposal = spec.parse_proposal(case["completion"], [], require_think=case["require_think"])
    expect = case["expect"]
    assert proposal.format_ok is expect["format_ok"], proposal
    assert proposal.error == expect["error"], proposal
    if expect["error"] is None:
        cand = proposal.candidate
        assert cand is not None and cand.task_type == task_type
        assert cand.input == expect["input"]
        assert cand.output is None  # the executor computes it
        assert "def f(" in cand.program
        for text in expect.get("program_has", []):
            assert text in cand.program
        for text in expect.get("program_lacks", []):
            assert text not in cand.program
    else:
        assert proposal.candidate is None


@pytest.mark.parametrize("case", INDUCTION["cases"], ids=[c["name"] for c in INDUCTION["cases"]])
def test_induction_proposal_fixtures(case):
    spec = get_task_spec("induction", num_inputs=4, answer_extraction=case.get("extraction", "reference"))
    reference = Task("deduction", INDUCTION["program"], input="'ab', 1", output="'ba'")
    proposal = spec.parse_proposal(case["completion"], [reference], require_think=case["require_think"])
    expect = case["expect"]
    assert (proposal.format_ok, proposal.error) == (expect["format_ok"], expect["error"]), proposal
    if expect["error"] is None:
        cand = proposal.candidate
        assert cand.task_type == "induction"
        assert cand.program == INDUCTION["program"]
        assert cand.inputs == expect["inputs"]
        assert cand.message == expect["message"]
        assert cand.outputs == []


@pytest.mark.parametrize("case", SOLVE_CASES, ids=[c["name"] for c in SOLVE_CASES])
def test_solver_answer_fixtures(case):
    spec = get_task_spec(case["task_type"], answer_extraction=case.get("extraction", "reference"))
    answer = spec.parse_answer(case["completion"], require_think=case["require_think"])
    expect = case["expect"]
    assert answer.format_ok is expect["format_ok"], answer
    if "error" in expect:
        assert answer.error == expect["error"]
    if "answer" in expect:
        assert answer.answer == expect["answer"]
    for text in expect.get("answer_has", []):
        assert text in answer.answer
    for text in expect.get("answer_lacks", []):
        assert text not in answer.answer


def test_induction_parse_needs_the_program():
    spec = get_task_spec("induction")
    with pytest.raises(ValueError, match="reference"):
        spec.parse_proposal("<answer></answer>", [])


# ----- envelope -----


@pytest.mark.parametrize(
    ("completion", "require_think", "ok", "error", "answer"),
    [
        ("<think>a</think><answer>x</answer>", True, True, None, "x"),
        (" a</think>\n<answer>x</answer> trailing", True, True, None, "x"),  # r1: <think> is in the prompt
        ("a</think> text between <answer>x</answer>", True, False, "misordered_tags", "x"),
        ("<answer>x</answer>", False, True, None, "x"),
        ("<answer>x", False, False, "unclosed_answer", "x"),
        ("nothing", False, False, "missing_answer", None),
        ("<answer>a</answer> <answer>b</answer>", False, True, None, "b"),
        ("<think>plan</think>\n<answer>x</answer>", False, True, None, "x"),
    ],
)
def test_strict_envelope(completion, require_think, ok, error, answer):
    env = get_reader("strict").envelope(completion, require_think)
    assert (env.format_ok, env.error, env.answer) == (ok, error, answer)


def test_fenced_blocks_tags_and_inline():
    text = "```python\ndef f(x):\n    return x\n```\n```input 'a', 1```\n```'abc'```\n```output_3\n7\n```\n```input\n"
    blocks = fenced_blocks(text)
    assert [(b.tag, b.body) for b in blocks] == [
        ("python", "def f(x):\n    return x"),
        ("input", "'a', 1"),
        ("", "'abc'"),
        ("output_3", "7"),
    ]  # the unclosed last fence is ignored


# ----- programs and inputs -----


def test_rename_entry_options():
    code = "def helper(x):\n    return x + 1\n\ndef main(x):\n    return helper(x) * 2\n"
    last, err = prepare_program(code, ProgramOptions(rename_entry="last"))
    assert err is None and "def f(x)" in last and "def helper" in last
    first, err = prepare_program(code, ProgramOptions(rename_entry="first"))
    assert err is None and "def f(x)" in first and "return f(x) * 2" in first
    assert prepare_program(code, ProgramOptions(rename_entry=None)) == (None, "no_entry_function")


def test_rename_does_not_touch_attributes_or_strings():
    code = "def solve(s):\n    return s.solve + 'solve'\n"
    program, err = prepare_program(code)
    assert err is None
    assert program == "def f(s):\n    return s.solve + 'solve'\n"


def test_rename_by_text_is_the_reference_regex_rename():
    text = ProgramOptions(rename_by="text")
    # Every `name(` of the text, a method call and a string included; the layout is kept.
    program, err = prepare_program("def solve(s):\n    return s.solve('solve(') + solve\n", text)
    assert err is None and program == "def f(s):\n    return s.f('f(') + solve\n"
    # The last def anywhere (a nested helper); none when any def is named f, even a method.
    nested, _ = prepare_program("def g(x):\n    def h(y):\n        return y\n    return h(x)\n", text)
    assert nested == "def g(x):\n    def f(y):\n        return y\n    return f(x)\n"
    method = "class A:\n    def f(self):\n        return 1\n\ndef g(x):\n    return x\n"
    assert prepare_program(method, text)[0] == method
    assert prepare_program(method)[0].endswith("def f(x):\n    return x\n")  # token: the last top-level function
    assert prepare_program("x = 1\n", text) == (None, "no_entry_function")


def test_reject_input_calls_option():
    helper = "def parse_input(x):\n    return x\n\ndef f(x):\n    return parse_input(x)\n"
    assert prepare_program(helper)[1] is None
    assert prepare_program(helper, ProgramOptions(reject_input_calls=True)) == (None, "input_call")
    assert prepare_input("'input(x)'") == ("'input(x)'", None)
    assert prepare_input("'input(x)'", reject_input_calls=True) == (None, "input_call")


def test_pasted_proposal_inputs_name_arguments_or_are_expressions():
    for text in ("xs=[3, 1]", "[1] + [2]", "sorted([3, 1]), key=None", "*[1, 2]"):
        assert prepare_input(text) == (None, "invalid_input"), text
        assert prepare_input(text, pasted=True) == (text, None), text
    assert prepare_input("f(xs=[3, 1])", keep_call=True, pasted=True) == ("f(xs=[3, 1])", None)
    for bad in ("", "1), (2", "1) or (2", "import os", "1)\n    import os\n    (1"):  # not one argument list
        assert prepare_input(bad, pasted=True)[0] is None, bad
    # Literal inputs still reach the executor as literals; any other is pasted into an entry of its own, to run in
    # the sandbox (nested under call_wrapped_inputs: nest).
    program = "def f(a, b=0):\n    return a - b\n"
    assert call_job(program, "5, 2", pasted=True) == ExecJob(program, "5, 2")
    job = call_job(program, "5, b=[2][0]", pasted=True)
    assert (job.input, job.entry) == ("", PASTED_ENTRY) and job.program.endswith("return f(5, b=[2][0])\n")
    nested = call_job(program, "f(a=5)", pasted=True)
    assert nested.program.endswith("return f(f(a=5))\n")
    assert call_job(program, "a=5") == ExecJob(program, "a=5")  # not pasted: left to the executor (invalid_input)


def test_pasted_inputs_rules():
    assert prepare_input("[3, 1]  # one input") == ("[3, 1]  # one input", None)
    assert prepare_input("[3, 1]  # one input", pasted=True) == (None, "input_comment")
    assert prepare_input("[3,  # first\n 1]", pasted=True) == ("[3,  # first\n 1]", None)  # the ) is on a new line
    assert pastes_into_call("'a # b', 2") and not pastes_into_call("2  # two")
    # Graded on one line: no line break anywhere (a trailing one too), and it pastes.
    assert grades_on_one_line(" [1, 2] ") and grades_on_one_line("f([1])")
    assert not grades_on_one_line("[1,\n 2]") and not grades_on_one_line("[1, 2]\n")
    assert not grades_on_one_line("[1, 2]  # c")


def test_reject_multiple_functions_option():
    nested = "def f(x):\n    def g(y):\n        return y\n    return g(x)\n"
    assert prepare_program(nested)[1] is None  # allowed by default
    assert prepare_program(nested, ProgramOptions(reject_multiple_functions=True)) == (None, "multiple_functions")
    spec = get_task_spec("deduction", reject_multiple_functions=True)
    completion = f"<answer>\n```python\n{nested}```\n```input\n1\n```\n</answer>"
    assert spec.parse_proposal(completion, [], require_think=False).error == "multiple_functions"


def test_strip_keeps_statements_sharing_a_line():
    code = "def f(x):\n    return x\nX = 1; print(X)\n"
    program, err = prepare_program(code)
    assert err is None and "X = 1; print(X)" in program


def test_program_too_long_and_hostile_nesting():
    assert prepare_program("def f(x):\n    return x\n" + "#" * 30_000)[1] == "program_too_long"
    assert prepare_program("def f(x):\n    return " + "(" * 5000 + "x" + ")" * 5000)[1] == "syntax_error"
    # parses, but would break ast.dump / radon / complexipy downstream
    deep = "def f(x):\n    return " + "-" * 500 + "x\n"
    assert prepare_program(deep) == (None, "program_too_deep")
    assert Task("deduction", deep, input="1").key()  # keys of such text never crash either


def test_prepare_input_rules():
    assert prepare_input("  'a', [1, 2]\n") == ("'a', [1, 2]", None)
    assert prepare_input("f('a')") == ("'a'", None)
    assert prepare_input("") == (None, "empty_input")
    assert prepare_input("__import__('os').system('true')") == (None, "invalid_input")
    assert prepare_input("x" * 6000) == (None, "input_too_long")


def test_shapes_ignore_layout():
    a = "def f(x):\n    '''doc'''\n    # comment\n    return x+1\n"
    b = "def f(x):\n    return (x + 1)\n"
    assert program_shape(a) == program_shape(b)
    assert program_shape(a) != program_shape("def f(x):\n    return x + 2\n")
    assert input_shape("'a',[1,2]") == input_shape('"a", [1, 2]')


def test_input_shape_is_stable_across_processes():
    """Set order follows string hashing, which differs per process; dedup keys must not."""
    import subprocess
    import sys

    code = (
        "from azr_trl.tasks import Task; "
        "print(Task('deduction', 'def f(s):\\n    return len(s)\\n', input=\"{'pear', 'fig', 'kiwi', 'plum'}, {2, 1}\").key())"
    )
    keys = {
        subprocess.run(
            [sys.executable, "-c", code], env={"PYTHONHASHSEED": str(seed)}, capture_output=True, text=True, check=True
        ).stdout
        for seed in (1, 2, 3)
    }
    assert len(keys) == 1
    assert input_shape("{'b', 'a'}, (1,), {}, set()") == "({'a', 'b'}, (1,), {}, set())"


# ----- answer extraction: reference (default) vs strict -----

EXTRACTION = _load("solve_extraction.yaml")


@pytest.fixture(scope="module")
def executor():
    from azr_trl.executor import ExecutorConfig, make_executor

    ex = make_executor(ExecutorConfig(timeout=3.0, workers=2))
    yield ex
    ex.close()


@pytest.mark.parametrize("extraction", ["reference", "strict"])
@pytest.mark.parametrize("case", EXTRACTION["cases"], ids=[c["name"] for c in EXTRACTION["cases"]])
def test_answer_extraction_table(case, extraction, executor):
    """Each completion parsed and graded under both extractions: the answer found, the format verdict, the reward."""
    from azr_trl.selfplay.rewards import RewardSettings, solver_reward

    task_type = case["task_type"]
    spec = get_task_spec(task_type, num_inputs=4, answer_extraction=extraction)
    task = Task(task_type, **EXTRACTION["tasks"][task_type])
    answer = spec.parse_answer(case["completion"], require_think=case["require_think"])
    expect = case[extraction]
    assert answer.format_ok is expect["format_ok"], answer
    if "answer" in expect:
        assert answer.answer == expect["answer"]
    correct = spec.verify(executor, [task], [answer])[0]
    assert solver_reward(answer.format_ok, correct, RewardSettings()) == expect["reward"]


def test_answer_extraction_table_covers_every_task_type():
    cases = EXTRACTION["cases"]
    for task_type in ("deduction", "abduction", "induction"):
        assert sum(c["task_type"] == task_type for c in cases) >= 15, task_type
    # The extractions differ for every task type (unfenced answers graded; programs run as written).
    differ = {c["task_type"] for c in cases if c["reference"]["reward"] != c["strict"]["reward"]}
    assert differ == {"deduction", "abduction", "induction"}


def test_extraction_rejects_unknown_mode():
    with pytest.raises(ValueError, match="answer extraction"):
        get_task_spec("deduction", answer_extraction="loose")
