"""AZR reward functions with TRL's reward-function signature.

``fn(prompts, completions, completion_ids, **kwargs) -> list[float | None]``: every keyword argument is a per-row
list (TRL passes the extra columns of the rows). The AZR rows carry:

- ``role``: ``"propose"`` or ``"solve"``; ``task_type``: ``"deduction"``, ``"abduction"`` or ``"induction"``;
- ``format_ok``: the completion's think/answer tags and required blocks are well formed;
- propose rows: ``valid`` (the executor accepted the candidate), ``solve_rate`` (Monte-Carlo solve rate r in [0, 1],
  ``None`` when not measured) and ``intrinsic`` (a dict of raw intrinsic values, see :mod:`azr_trl.selfplay.intrinsic`);
- solve rows: ``correct`` (bool, or a score in [0, 1]).

Each function returns ``None`` for the rows of the other role, so TRL sums them into one reward per row. They do no
execution: everything expensive happens before, in batch, in the trainer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .intrinsic import IntrinsicSpec, parse_intrinsic_config


RewardFunc = Callable[..., list[float | None]]

COMBINE_METHODS: tuple[str, ...] = ("sum", "multiply", "sum_multiply", "multiply_sum")


@dataclass
class RewardSettings:
    """The reward constants, read from any object with :class:`~azr_trl.AZRConfig`'s attribute names.

    Paper defaults; the reference code's proposer variant is ``trivial_task_reward=-0.5``.
    """

    solver_correct_reward: float = 1.0
    solver_wrong_reward: float = -0.5
    format_error_reward: float = -1.0
    invalid_proposal_reward: float = -1.0
    trivial_task_reward: float = 0.0
    intrinsic_rewards: dict[str, IntrinsicSpec] = field(default_factory=dict)
    intrinsic_combine: str = "sum"

    def __post_init__(self):
        if self.intrinsic_combine not in COMBINE_METHODS:
            raise ValueError(f"intrinsic_combine={self.intrinsic_combine!r} is not one of {list(COMBINE_METHODS)}.")

    @classmethod
    def from_config(cls, config: Any) -> RewardSettings:
        defaults = cls()
        values = {
            name: getattr(config, name, getattr(defaults, name))
            for name in (
                "solver_correct_reward",
                "solver_wrong_reward",
                "format_error_reward",
                "invalid_proposal_reward",
                "trivial_task_reward",
                "intrinsic_combine",
            )
        }
        values["intrinsic_rewards"] = parse_intrinsic_config(getattr(config, "intrinsic_rewards", None))
        return cls(**{k: (float(v) if k.endswith("_reward") else v) for k, v in values.items()})


def combine_intrinsic(base: float, terms: Sequence[float], method: str) -> float:
    """Combine the learnability reward with clipped intrinsic terms (the reference's four methods)."""
    if not terms:
        return base
    if method == "sum":
        return base + sum(terms)
    if method == "multiply":
        return base * math.prod(terms)
    if method == "sum_multiply":
        return base + math.prod(terms)
    if method == "multiply_sum":
        return base * sum(terms)
    raise ValueError(f"Unknown intrinsic_combine {method!r}: use one of {list(COMBINE_METHODS)}.")


def proposer_reward(
    format_ok: bool,
    valid: bool,
    solve_rate: float | None,
    intrinsic: dict[str, float] | None,
    settings: RewardSettings,
) -> float:
    """One proposer reward.

    Format error -> ``format_error_reward``; invalid task -> ``invalid_proposal_reward``; valid task with solve rate
    ``0 < r < 1`` -> ``1 - r`` combined with the enabled intrinsic rewards (each ``min(coef * value, max)``); a valid
    task with ``r`` in {0, 1} (or not measured) -> ``trivial_task_reward``, with no intrinsic bonus (as in the
    reference, intrinsic terms only add to a positive learnability).
    """
    if not format_ok:
        return settings.format_error_reward
    if not valid:
        return settings.invalid_proposal_reward
    if solve_rate is None or not (0.0 < solve_rate < 1.0):
        return settings.trivial_task_reward
    terms = [
        min(spec.coef * float(intrinsic[name]), spec.max)
        for name, spec in settings.intrinsic_rewards.items()
        if intrinsic and intrinsic.get(name) is not None
    ]
    return combine_intrinsic(1.0 - solve_rate, terms, settings.intrinsic_combine)


def solver_reward(format_ok: bool, correct: bool | float | None, settings: RewardSettings) -> float:
    """One solver reward: format error / correct / well formatted but wrong."""
    if not format_ok:
        return settings.format_error_reward
    if correct is not None and float(correct) >= 1.0:
        return settings.solver_correct_reward
    return settings.solver_wrong_reward


def _column(kwargs: dict[str, Any], name: str, n: int, default: Any = None) -> list[Any]:
    values = kwargs.get(name)
    if values is None:
        return [default] * n
    if len(values) != n:
        raise ValueError(f"Reward column {name!r} has {len(values)} values for {n} completions.")
    return list(values)


def make_azr_reward_funcs(config: Any = None) -> list[RewardFunc]:
    """The two AZR reward functions, ``[azr_propose_reward, azr_solve_reward]``, configured from ``config``.

    ``config`` is any object with :class:`~azr_trl.AZRConfig`'s reward attribute names (``solver_correct_reward``,
    ``solver_wrong_reward``, ``format_error_reward``, ``invalid_proposal_reward``, ``trivial_task_reward``,
    ``intrinsic_rewards``, ``intrinsic_combine``); missing attributes take the paper defaults.
    """
    settings = RewardSettings.from_config(config)

    def azr_propose_reward(prompts, completions, completion_ids=None, **kwargs) -> list[float | None]:
        n = len(completions)
        roles = _column(kwargs, "role", n)
        format_ok = _column(kwargs, "format_ok", n, False)
        valid = _column(kwargs, "valid", n, False)
        solve_rate = _column(kwargs, "solve_rate", n)
        intrinsic = _column(kwargs, "intrinsic", n)
        return [
            proposer_reward(bool(format_ok[i]), bool(valid[i]), _rate(solve_rate[i]), intrinsic[i], settings)
            if roles[i] == "propose"
            else None
            for i in range(n)
        ]

    def azr_solve_reward(prompts, completions, completion_ids=None, **kwargs) -> list[float | None]:
        n = len(completions)
        roles = _column(kwargs, "role", n)
        format_ok = _column(kwargs, "format_ok", n, False)
        correct = _column(kwargs, "correct", n)
        return [
            solver_reward(bool(format_ok[i]), correct[i], settings) if roles[i] == "solve" else None for i in range(n)
        ]

    azr_propose_reward.settings = settings  # type: ignore[attr-defined]
    azr_solve_reward.settings = settings  # type: ignore[attr-defined]
    return [azr_propose_reward, azr_solve_reward]


def _rate(value: Any) -> float | None:
    """Solve rates may arrive as None or NaN (not measured)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value
