"""Where a completion is read: one table case per rule of the reference reading, under the settings each preset
gives and under `strict` (tests/fixtures/completions/reference_reading.yaml), run through the real executor."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from azr_trl.azr_config_checks import PRESETS
from azr_trl.selfplay.rewards import RewardSettings, solver_reward
from azr_trl.tasks import Task, get_task_spec, validate_candidates
from azr_trl.tasks.reading import READERS, get_reader


TABLE = yaml.safe_load((Path(__file__).parent / "fixtures/completions/reference_reading.yaml").read_text())
# The preset fields the trainer hands to every task spec (azr_trainer._task_spec).
SPEC_FIELDS = (
    "call_wrapped_inputs",
    "value_equality",
    "pasted_inputs",
    "truncate_outputs",
    "reject_input_calls",
    "entry_rename",
    "keep_badly_formatted_tasks",
)
SETTINGS = {
    "reference": {"answer_extraction": "reference", **{k: PRESETS["reference"][k] for k in SPEC_FIELDS}},
    "paper": {"answer_extraction": "reference", **{k: PRESETS["paper"][k] for k in SPEC_FIELDS}},
    "strict": {"answer_extraction": "strict", **{k: PRESETS["paper"][k] for k in SPEC_FIELDS}},
}
RUNS = [(case, setting) for case in TABLE["cases"] for setting in SETTINGS if setting in case]
INDUCTION_REFERENCE = Task("deduction", "def f(x):\n    return x // 2\n", input="4", output="2")


@pytest.fixture(scope="module")
def executor():
    from azr_trl.executor import ExecutorConfig, make_executor

    ex = make_executor(ExecutorConfig(timeout=3.0, workers=2))
    yield ex
    ex.close()


def _task(name: str) -> Task:
    fields = dict(TABLE["tasks"][name])
    return Task(fields.pop("task_type"), **fields)


@pytest.mark.parametrize(("case", "setting"), RUNS, ids=[f"{c['name']}-{s}" for c, s in RUNS])
def test_reference_reading_table(case, setting, executor):
    expect = case[setting]
    task = _task(case["task"]) if "task" in case else None
    task_type = task.task_type if task else case["task_type"]
    spec = get_task_spec(task_type, num_inputs=4, **SETTINGS[setting])
    if case["role"] == "propose":
        proposal = spec.parse_proposal(case["completion"], [INDUCTION_REFERENCE], require_think=case["require_think"])
        assert (proposal.format_ok, proposal.error) == (expect["format_ok"], expect["error"]), proposal
        for key in ("input", "inputs", "message"):
            if key in expect:
                assert getattr(proposal.candidate, key) == expect[key]
        if "valid" in expect:
            validated, verdict = validate_candidates(executor, [(spec, proposal.candidate)])[0]
            assert (validated is not None) is expect["valid"], verdict
            if "output" in expect:
                assert validated.output == expect["output"]
            if "output_length" in expect:
                assert len(validated.output) == expect["output_length"], validated.output
        return
    monte_carlo = case["role"] == "monte_carlo"
    answer = spec.parse_answer(
        case["completion"], require_think=case.get("require_think", False), monte_carlo=monte_carlo
    )
    if "answer" in expect:
        assert answer.answer == expect["answer"]
    correct = spec.verify(executor, [task], [answer])[0]
    if monte_carlo:
        assert correct is expect["correct"]
        return
    assert answer.format_ok is expect["format_ok"], answer
    assert solver_reward(answer.format_ok, correct, RewardSettings()) == expect["reward"]


def test_every_reading_rule_has_a_reference_case():
    names = {case["name"] for case in TABLE["cases"]}
    assert len(names) == len(TABLE["cases"])
    assert all("reference" in case or "paper" in case for case in TABLE["cases"])
    assert {case["role"] for case in TABLE["cases"]} == {"solve", "monte_carlo", "propose"}


def test_settings_are_every_spec_field_of_the_presets():
    """SPEC_FIELDS are exactly the preset fields a task spec takes, so the table runs under what each preset gives."""
    import inspect

    from azr_trl.tasks.base import TaskSpec

    spec_args = set(inspect.signature(TaskSpec.__init__).parameters)
    assert {name for name in PRESETS["reference"] if name in spec_args} == set(SPEC_FIELDS)


def test_readers_are_named_by_answer_extraction():
    assert set(READERS) == {"reference", "strict"}
    assert get_reader("strict").name == "strict"
    with pytest.raises(ValueError, match="answer extraction"):
        get_reader("loose")


@pytest.mark.parametrize(
    ("completion", "require_think", "ok", "error", "answer"),
    [
        ("<think>a</think><answer>x</answer>", True, True, None, "x"),
        (" a</think>\n<answer> x </answer> trailing", True, True, None, "x"),  # r1: the prompt opened <think>
        ("a</think> text between <answer>x</answer>", True, False, "misordered_tags", "x"),
        ("a <answer>x</answer>", True, False, "missing_think", "x"),
        ("a</think><answer>x", True, False, "unclosed_answer", "x"),
        ("nothing", True, False, "missing_answer", None),
        ("a</think><answer>x</answer>'", True, True, None, "x"),  # quotes at the ends are stripped
        ("<answer>x</answer>", False, True, None, "x"),
        ("<think>plan <answer>x</answer>", False, False, "unclosed_think", "x"),
        ("a</think><answer>x</answer> Assistant: <answer>y</answer>", True, True, None, "x"),
    ],
)
def test_reference_envelope(completion, require_think, ok, error, answer):
    env = get_reader("reference").envelope(completion, require_think)
    assert (env.format_ok, env.error, env.answer) == (ok, error, answer)
