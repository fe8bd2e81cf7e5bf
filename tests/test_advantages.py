"""Task-Relative REINFORCE++ against hand-computed advantages."""

import math

import pytest
import torch

from azr_trl.selfplay.advantages import baseline_group_ids, task_relative_advantages


def test_groups_per_task_and_role():
    types = ["deduction", "deduction", "abduction", "induction"]
    roles = ["propose", "solve", "propose", "solve"]
    task_role = baseline_group_ids(types, roles, "task_role").tolist()
    assert len(set(task_role)) == 4
    assert baseline_group_ids(types, roles, "role").tolist() == [0, 1, 0, 1]
    assert baseline_group_ids(types, roles, "global").tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="baseline"):
        baseline_group_ids(types, roles, "per_prompt")


def test_sample_weighted_whitening_per_group():
    # group 0: rewards 1, -0.5, -1 -> mean -1/6, Bessel std sqrt(((7/6)^2 + (1/3)^2 + (5/6)^2) / 2)
    # group 1: rewards 0.5, 0.5 -> all equal -> advantages exactly 0
    rewards = torch.tensor([1.0, -0.5, -1.0, 0.5, 0.5])
    groups = torch.tensor([0, 0, 0, 1, 1])
    adv = task_relative_advantages(rewards, groups)
    mean = -1 / 6
    std = math.sqrt(((1 - mean) ** 2 + (-0.5 - mean) ** 2 + (-1 - mean) ** 2) / 2)
    expected = [(r - mean) / std for r in (1.0, -0.5, -1.0)] + [0.0, 0.0]
    assert adv.tolist() == pytest.approx(expected, abs=1e-6)


def test_groups_do_not_share_statistics():
    # The same rewards in another group must not change this group's advantages.
    rewards = torch.tensor([1.0, 0.0, 10.0, 20.0])
    alone = task_relative_advantages(rewards[:2], torch.tensor([0, 0]))
    together = task_relative_advantages(rewards, torch.tensor([0, 0, 1, 1]))
    assert together[:2].tolist() == pytest.approx(alone.tolist())
    mixed = task_relative_advantages(rewards, torch.tensor([0, 0, 0, 0]))
    assert mixed[:2].tolist() != pytest.approx(alone.tolist())


def test_token_weighting_matches_hand_computation():
    rewards = torch.tensor([1.0, -1.0])
    lengths = torch.tensor([3, 1])
    adv = task_relative_advantages(rewards, torch.tensor([0, 0]), lengths, weighting="token")
    mean = (3 * 1.0 + 1 * -1.0) / 4  # 0.5
    var = (3 * (1 - mean) ** 2 + 1 * (-1 - mean) ** 2) / (4 - 1)  # Bessel on the token count
    expected = [(1 - mean) / math.sqrt(var), (-1 - mean) / math.sqrt(var)]
    assert adv.tolist() == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="lengths"):
        task_relative_advantages(rewards, torch.tensor([0, 0]), weighting="token")


def test_no_scaling_subtracts_the_mean_only():
    adv = task_relative_advantages(torch.tensor([2.0, 0.0, 1.0]), torch.tensor([0, 0, 0]), scale=False)
    assert adv.tolist() == pytest.approx([1.0, -1.0, 0.0])


def test_unscored_rows_and_singletons_get_zero():
    rewards = torch.tensor([1.0, float("nan"), -1.0, 5.0])
    adv = task_relative_advantages(rewards, torch.tensor([0, 0, 0, 1]))
    assert adv[1].item() == 0.0  # NaN reward: no advantage, and it is not part of the statistics
    assert adv[3].item() == 0.0  # a group of one has no baseline
    assert adv[0].item() == pytest.approx(-adv[2].item())
    assert adv[0].item() > 0
