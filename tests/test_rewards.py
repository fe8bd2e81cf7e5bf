"""Reward tables for every branch, TRL's reward-function signature, and the intrinsic rewards."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from azr_trl.selfplay.intrinsic import (
    IntrinsicSpec,
    compute_intrinsic,
    halstead_score,
    mean_edit_distance,
    parse_intrinsic_config,
)
from azr_trl.selfplay.rewards import RewardSettings, make_azr_reward_funcs
from azr_trl.tasks import Task


def _call(funcs, rows):
    """Call the reward functions the way TRL's _calculate_rewards does: per-row lists as keyword arguments."""
    keys = sorted({k for row in rows for k in row})
    kwargs = {k: [row.get(k) for row in rows] for k in keys}
    n = len(rows)
    return [f(prompts=["p"] * n, completions=["c"] * n, completion_ids=[[1]] * n, **kwargs) for f in funcs]


def _propose(format_ok=True, valid=True, solve_rate=None, intrinsic=None, task_type="deduction"):
    return dict(
        role="propose",
        task_type=task_type,
        format_ok=format_ok,
        valid=valid,
        solve_rate=solve_rate,
        intrinsic=intrinsic,
        correct=None,
    )


def _solve(format_ok=True, correct=False, task_type="deduction"):
    return dict(
        role="solve",
        task_type=task_type,
        format_ok=format_ok,
        valid=None,
        solve_rate=None,
        intrinsic=None,
        correct=correct,
    )


PAPER_TABLE = [
    # (row, proposer reward, solver reward)
    (_propose(format_ok=False, valid=False), -1.0, None),
    (_propose(format_ok=True, valid=False), -1.0, None),
    (_propose(solve_rate=0.0), 0.0, None),  # impossible for the solver: trivial
    (_propose(solve_rate=1.0), 0.0, None),  # always solved: trivial
    (_propose(solve_rate=0.25), 0.75, None),
    (_propose(solve_rate=0.875), 0.125, None),
    (_propose(solve_rate=None), 0.0, None),  # not measured
    (_propose(format_ok=False, valid=True, solve_rate=0.5), -1.0, None),  # valid program, broken tags
    (_solve(correct=True), None, 1.0),
    (_solve(correct=False), None, -0.5),
    (_solve(correct=None), None, -0.5),
    (_solve(format_ok=False, correct=True), None, -1.0),
    (_solve(correct=0.6), None, -0.5),  # partial induction score is not correct
    (_solve(correct=1.0), None, 1.0),
]


def test_paper_defaults_table():
    funcs = make_azr_reward_funcs(SimpleNamespace())
    assert [f.__name__ for f in funcs] == ["azr_propose_reward", "azr_solve_reward"]
    propose, solve = _call(funcs, [row for row, _, _ in PAPER_TABLE])
    for i, (_, want_p, want_s) in enumerate(PAPER_TABLE):
        assert propose[i] == (None if want_p is None else pytest.approx(want_p)), i
        assert solve[i] == (None if want_s is None else pytest.approx(want_s)), i


def test_every_constant_is_configurable():
    config = SimpleNamespace(
        solver_correct_reward=2.0,
        solver_wrong_reward=-0.25,
        format_error_reward=-3.0,
        invalid_proposal_reward=-2.0,
        trivial_task_reward=-0.5,  # the reference code's value
    )
    rows = [
        _propose(format_ok=False, valid=False),
        _propose(valid=False),
        _propose(solve_rate=1.0),
        _propose(solve_rate=0.0),
        _propose(solve_rate=0.5),
        _solve(correct=True),
        _solve(correct=False),
        _solve(format_ok=False),
    ]
    propose, solve = _call(make_azr_reward_funcs(config), rows)
    assert propose[:5] == [-3.0, -2.0, -0.5, -0.5, 0.5]
    assert solve[5:] == [2.0, -0.25, -3.0]


def test_missing_columns_and_nan_solve_rate():
    (propose,) = [make_azr_reward_funcs(None)[0]]
    out = propose(["p"], ["c"], None, role=["propose"], format_ok=[True], valid=[True], solve_rate=[float("nan")])
    assert out == [0.0]
    with pytest.raises(ValueError, match="format_ok"):
        propose(["p", "q"], ["c", "d"], None, role=["propose", "propose"], format_ok=[True])


@pytest.mark.parametrize(
    ("combine", "expected"),
    [
        ("sum", 0.5 + 0.2 + 0.3),
        ("multiply", 0.5 * 0.2 * 0.3),
        ("sum_multiply", 0.5 + 0.2 * 0.3),
        ("multiply_sum", 0.5 * (0.2 + 0.3)),
    ],
)
def test_intrinsic_combination_and_clipping(combine, expected):
    config = SimpleNamespace(
        intrinsic_rewards={"complexity": {"coef": 0.1, "max": 0.2}, "halstead": {"coef": 1.0, "max": 0.9}},
        intrinsic_combine=combine,
    )
    intrinsic = {"complexity": 5.0, "halstead": 0.3, "answer_diversity": 1.0}  # complexity clipped to 0.2
    rows = [
        _propose(solve_rate=0.5, intrinsic=intrinsic),
        _propose(solve_rate=1.0, intrinsic=intrinsic),  # no bonus on a trivial task
        _propose(solve_rate=0.5, intrinsic={}),
    ]
    propose, _ = _call(make_azr_reward_funcs(config), rows)
    assert propose[0] == pytest.approx(expected)
    assert propose[1] == 0.0
    assert propose[2] == 0.5


def test_settings_validation():
    with pytest.raises(ValueError, match="intrinsic_combine"):
        RewardSettings(intrinsic_combine="max")
    with pytest.raises(ValueError, match="Unknown intrinsic reward"):
        parse_intrinsic_config({"beauty": {"coef": 1}})
    with pytest.raises(ValueError, match="coef"):
        parse_intrinsic_config({"halstead": {"weight": 1}})
    assert parse_intrinsic_config('{"halstead": {"coef": 0.5, "max": 1}, "complexity": {"coef": 0}}') == {
        "halstead": IntrinsicSpec(0.5, 1.0)
    }
    assert parse_intrinsic_config(None) == {}


# ----- intrinsic values -----

SIMPLE = "def f(x):\n    return x\n"
BRANCHY = """def f(xs, k):
    out = []
    for i, x in enumerate(xs):
        if x % 2 == 0 and i > k:
            out.append(x * i)
        elif x > k:
            while x > k:
                x -= k
            out.append(x)
        else:
            out.append(-x)
    return out
"""


def test_intrinsic_metrics_order_programs():
    assert halstead_score(BRANCHY) > halstead_score(SIMPLE) >= 0.0
    assert halstead_score("def f(:") is None
    assert mean_edit_distance(SIMPLE, [SIMPLE]) == 0.0
    assert 0.0 < mean_edit_distance(BRANCHY, [SIMPLE]) <= 1.0
    assert mean_edit_distance(SIMPLE, []) is None


def test_compute_intrinsic_only_enabled_and_per_type():
    refs = [Task("deduction", SIMPLE, input="1", output="1"), Task("deduction", SIMPLE, input="2", output="2")]
    tasks = [
        Task("deduction", BRANCHY, input="[1, 2, 3], 1", output="[-1, 2, 6]"),
        None,
        Task("abduction", SIMPLE, input="1", output="1"),
        Task("induction", SIMPLE, inputs=["1", "5"], outputs=["1", "5"], message="m"),
    ]
    config = SimpleNamespace(
        intrinsic_rewards={
            "complexity": {"coef": 0.1},
            "mean_edit_distance": {"coef": 0.1},
            "answer_diversity": {"coef": 0.1},
            "input_diversity": {"coef": 0.1},
        }
    )
    out = compute_intrinsic(tasks, [refs, refs, refs, refs], config)
    assert set(out[0]) == {"complexity", "mean_edit_distance", "answer_diversity"}
    assert out[0]["complexity"] > 0 and out[0]["answer_diversity"] == 1.0  # unseen output
    assert out[1] == {}
    assert out[2]["answer_diversity"] == 0.5  # input 1 is one of the two reference inputs
    assert out[2]["mean_edit_distance"] == 0.0 and out[2]["complexity"] == 0.0
    assert set(out[3]) == {"input_diversity"}
    assert out[3]["input_diversity"] == pytest.approx((0.5 + 1.0) / 2)
    assert compute_intrinsic(tasks, [refs] * 4, SimpleNamespace(intrinsic_rewards=None)) == [{}] * 4
    assert not any(math.isnan(v) for d in out for v in d.values())
