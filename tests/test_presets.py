"""`preset: paper | reference`: every known paper/reference-code difference changes the value it should; GRPO
settings AZR cannot honour are refused; solver draws are one global draw sliced per rank."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from azr_trl import AZRConfig
from azr_trl.azr_config import task_spec as _task_spec
from azr_trl.azr_config_checks import PRESETS
from azr_trl.selfplay.advantages import baseline_group_ids, task_relative_advantages
from azr_trl.selfplay.buffer import TaskBuffer
from azr_trl.selfplay.draws import draw_solve_tasks
from azr_trl.selfplay.rewards import make_azr_reward_funcs
from azr_trl.tasks import Task, get_task_spec


def make(**kwargs):
    base = {"output_dir": "unused", "max_steps": 2, "use_cpu": True, "report_to": "none"}
    return AZRConfig(**{**base, "per_device_train_batch_size": 4, **kwargs})


PAPER, REFERENCE = make(), make(preset="reference")
PROGRAM = "def f(a, b):\n    return a * b + 1\n"
REF_TASK = Task("deduction", PROGRAM, input="2, 3", output="7")


def _induction_completion(inputs, message="Multiply, then add one."):
    blocks = "".join(f"```input\n{src}\n```\n" for src in inputs)
    return f"<answer>\n{blocks}```message\n{message}\n```\n</answer>"


def test_presets_name_the_same_fields_and_differ_in_each():
    assert PRESETS["paper"].keys() == PRESETS["reference"].keys()
    for name in PRESETS["paper"]:
        assert getattr(PAPER, name) == PRESETS["paper"][name]
        assert getattr(REFERENCE, name) == PRESETS["reference"][name]
        assert PRESETS["paper"][name] != PRESETS["reference"][name], name


def test_trivial_task_reward():
    rows = {"role": ["propose"] * 3, "format_ok": [True] * 3, "valid": [True] * 3, "solve_rate": [0.0, 1.0, 0.25]}
    paper = make_azr_reward_funcs(PAPER)[0]([""] * 3, [""] * 3, **rows)
    reference = make_azr_reward_funcs(REFERENCE)[0]([""] * 3, [""] * 3, **rows)
    assert paper == [0.0, 0.0, 0.75]
    assert reference == [-0.5, -0.5, 0.75]


def test_token_weighted_statistics():
    rewards = torch.tensor([1.0, -0.5, -0.5, 1.0])
    lengths = torch.tensor([100.0, 10.0, 10.0, 20.0])
    groups = baseline_group_ids(["deduction"] * 4, ["solve"] * 4)
    paper = task_relative_advantages(rewards, groups, lengths, weighting=PAPER.advantage_weighting)
    reference = task_relative_advantages(rewards, groups, lengths, weighting=REFERENCE.advantage_weighting)
    # Per sample: mean 0.25, Bessel std over 4 samples.
    torch.testing.assert_close(paper, (rewards - 0.25) / torch.tensor(0.75).sqrt(), rtol=1e-5, atol=1e-5)
    # Per token: mean over 140 tokens, variance with Bessel's correction on the token count.
    mean = (100 * 1.0 + 20 * 1.0 + 20 * -0.5) / 140
    var = (120 * (1.0 - mean) ** 2 + 20 * (-0.5 - mean) ** 2) / 139
    torch.testing.assert_close(reference, (rewards - mean) / torch.tensor(var).sqrt(), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(paper, reference)


def test_induction_with_more_inputs_than_asked():
    twelve = [f"{i}, {i + 1}" for i in range(12)]
    paper = _task_spec(make(induction_num_inputs=10), "induction").parse_proposal(
        _induction_completion(twelve), [REF_TASK], require_think=False
    )
    reference = _task_spec(make(preset="reference", induction_num_inputs=10), "induction").parse_proposal(
        _induction_completion(twelve), [REF_TASK], require_think=False
    )
    assert paper.error == "wrong_input_count" and paper.candidate is None
    assert reference.error is None and reference.candidate.inputs == twelve[-10:]
    # Fewer than asked is refused by both.
    few = _task_spec(REFERENCE, "induction").parse_proposal(_induction_completion(twelve[:9]), [REF_TASK], False)
    assert few.error == "wrong_input_count"


def test_duplicate_inputs_check():
    inputs = ["1, 2", "1,2", "3, 4", "5, 6", "7, 8", "9, 10", "2, 2", "0, 1", "4, 4", "6, 1"]  # "1, 2" twice
    paper = _task_spec(PAPER, "induction").parse_proposal(_induction_completion(inputs), [REF_TASK], False)
    reference = _task_spec(REFERENCE, "induction").parse_proposal(_induction_completion(inputs), [REF_TASK], False)
    assert paper.error == "duplicate_inputs"
    assert reference.error is None and reference.candidate.inputs == inputs


def test_message_leak_check():
    inputs = [f"{i}, 2" for i in range(10)]
    leak = "Here is the code: def f(a, b): return a * b + 1"
    paper = _task_spec(PAPER, "induction").parse_proposal(_induction_completion(inputs, leak), [REF_TASK], False)
    reference = _task_spec(REFERENCE, "induction").parse_proposal(
        _induction_completion(inputs, leak), [REF_TASK], False
    )
    assert paper.error == "message_leaks_program"
    assert reference.error is None and reference.candidate.message == leak


def test_seeding_sizes():
    assert (PAPER.seed_num_tasks, PAPER.seed_num_induction, PAPER.seeds_from_model) == (0, 0, False)
    assert (REFERENCE.seed_num_tasks, REFERENCE.seed_num_induction, REFERENCE.seed_min_tasks) == (256, 256, 64)
    assert REFERENCE.seeds_from_model
    # A seed file replaces the seeding phase; small sizes lower the minimum with them.
    assert not make(preset="reference", seed_files=["seeds.jsonl"]).seeds_from_model
    assert make(seed_num_tasks=8).seed_min_tasks == 8


def test_fields_set_explicitly_override_the_preset():
    config = make(
        preset="reference",
        trivial_task_reward=0.0,
        advantage_weighting="sample",
        induction_inputs="exact",
        reject_duplicate_inputs=True,
        reject_message_leaks=True,
        seed_num_tasks=0,
        seed_num_induction=0,
        call_wrapped_inputs="unwrap",
        require_think=False,
        value_equality="typed",
        pasted_inputs=False,
        truncate_outputs=0,
        reject_input_calls=False,
        entry_rename="token",
        keep_badly_formatted_tasks=False,
    )
    for name, value in PRESETS["paper"].items():
        # require_think's paper value, None, means "by prompt format": a run sets true or false explicitly instead
        assert getattr(config, name) == (False if name == "require_think" else value)
    assert make(trivial_task_reward=-0.5).trivial_task_reward == -0.5  # and under the paper preset


def test_answer_extraction_reaches_the_specs():
    completion = "<answer>The output is 7.</answer>"
    for task_type in ("deduction", "abduction"):
        assert _task_spec(PAPER, task_type).answer_extraction == "reference"
    assert _task_spec(PAPER, "deduction").parse_answer(completion, False).answer == "7"
    strict = _task_spec(make(answer_extraction="strict"), "deduction").parse_answer(completion, False)
    assert (strict.format_ok, strict.answer) == (False, None)


def test_reference_preset_needs_a_think_block_in_chat_too():
    from azr_trl.tasks.prompts import resolve_prompt_format

    assert resolve_prompt_format("chat", REFERENCE.require_think, None) == ("chat", True)
    assert resolve_prompt_format("chat", PAPER.require_think, None) == ("chat", False)
    assert resolve_prompt_format("r1", PAPER.require_think, None) == ("r1", True)


def test_call_wrapped_inputs_reach_the_specs():
    completion = "<answer>```input\nf([1, 3])\n```</answer>"
    assert _task_spec(PAPER, "abduction").parse_answer(completion, False).answer == "[1, 3]"
    assert _task_spec(REFERENCE, "abduction").parse_answer(completion, False).answer == "f([1, 3])"
    proposal = "<answer>```python\ndef f(x):\n    return x\n```\n```input\nf(2)\n```</answer>"
    assert _task_spec(REFERENCE, "deduction").parse_proposal(proposal, [], False).candidate.input == "f(2)"
    assert _task_spec(PAPER, "deduction").parse_proposal(proposal, [], False).candidate.input == "2"


def test_reference_behaviours_reach_the_specs():
    """value_equality, pasted_inputs, truncate_outputs, reject_input_calls, entry_rename and keep_badly_formatted_tasks:
    the preset's values reach every task spec the trainer builds (what each does:
    tests/fixtures/completions/reference_reading.yaml)."""
    for task_type in ("deduction", "abduction", "induction"):
        paper, reference = _task_spec(PAPER, task_type), _task_spec(REFERENCE, task_type)
        assert (paper.value_equality, reference.value_equality) == ("typed", "python")
        assert (paper.pasted_inputs, reference.pasted_inputs) == (False, True)
        assert (paper.truncate_outputs, reference.truncate_outputs) == (0, 400)
        assert (paper.reject_input_calls, reference.reject_input_calls) == (False, True)
        assert (paper.program_options.rename_by, reference.program_options.rename_by) == ("token", "text")
        assert (paper.keep_badly_formatted_tasks, reference.keep_badly_formatted_tasks) == (False, True)
    answer = "<answer>```output\n1\n```</answer>"
    task = Task("deduction", "def f(x):\n    return x > 0\n", input="3", output="True")
    for config, correct in ((PAPER, False), (REFERENCE, True)):
        spec = _task_spec(config, "deduction")
        assert spec.verify(None, [task], [spec.parse_answer(answer, False)]) == [correct]


@pytest.mark.parametrize(
    ("field", "value"), [("value_equality", "loose"), ("entry_rename", "regex"), ("truncate_outputs", -1)]
)
def test_reference_behaviour_fields_refuse_unknown_values(field, value):
    with pytest.raises(ValueError, match=field):
        make(**{field: value})


# ----- settings that cannot work -----


def test_entropy_bonus_defaults_to_the_papers():
    assert PAPER.entropy_coef == 0.001
    assert make(entropy_coef=0.0).entropy_coef == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_iterations": 2}, "num_iterations=2: an AZR step is on-policy"),
        ({"scale_rewards": "batch"}, "scale_rewards='batch'"),
        ({"scale_rewards": False}, "scale_rewards='none'"),
        ({"preset": "verl"}, "preset"),
        ({"answer_extraction": "loose"}, "answer_extraction"),
        ({"induction_inputs": "any"}, "induction_inputs"),
        ({"seed_num_tasks": 8, "seed_min_tasks": 9}, "seed_min_tasks"),
        ({"seed_num_induction": 8}, "seed_num_induction"),
        ({"seed_patience": 0}, "seed_patience"),
    ],
)
def test_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


def test_default_scale_rewards_is_accepted():
    assert make(scale_rewards="group").scale_rewards == "group"
    assert make(scale_rewards=True).scale_rewards == "group"


# ----- solver draws -----


def _fake_rank(buffer, rank, world, n=3, step=5):
    """Just what `draw_solve_tasks` reads from a trainer on one rank of `world`."""
    return SimpleNamespace(
        args=SimpleNamespace(solve_per_type=n, seed=0, solver_sampling="max_new"),
        accelerator=SimpleNamespace(num_processes=world, process_index=rank),
        state=SimpleNamespace(global_step=step),
        buffer=buffer,
        specs={"deduction": get_task_spec("deduction")},
        prompt_format="chat",
        _prompt_token_budget=lambda: 100,
        _tokenize_prompts=lambda prompts: ([[0]] * len(prompts), None, None),  # 1 token: every solve prompt fits
    )


@pytest.mark.parametrize("buffer_size", [16, 20, 7])
def test_solver_draws_are_one_global_draw(buffer_size):
    buffer = TaskBuffer(["deduction"], seed=0)
    buffer.add_seeds()
    buffer.add(
        [Task("deduction", f"def f(x):\n    return x + {i}\n", "1", str(1 + i)) for i in range(buffer_size - 1)], 1
    )
    world, n = 4, 3
    draws = [draw_solve_tasks(_fake_rank(buffer, r, world, n), "deduction") for r in range(world)]
    keys = [[t.key() for t in d] for d in draws]
    assert all(len(k) == n for k in keys)
    flat = [k for rank_keys in keys for k in rank_keys]
    # Distinct across ranks while the buffer has enough tasks; otherwise every task is used before any repeats.
    assert len(set(flat)) == min(world * n, buffer_size)
    # Every rank computes the same draw: asking rank 2 twice gives the same slice, and the slices tile the draw.
    assert [t.key() for t in draw_solve_tasks(_fake_rank(buffer, 2, world, n), "deduction")] == keys[2]
    # The draw depends on the step.
    later = draw_solve_tasks(_fake_rank(buffer, 0, world, n, step=6), "deduction")
    assert [t.key() for t in later] != keys[0] or buffer_size <= n
