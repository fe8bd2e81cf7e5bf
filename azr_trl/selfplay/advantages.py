"""Task-Relative REINFORCE++ (TRR++): advantages normalised separately per (task type, role).

Pure tensor functions with no trainer state, so they can be checked against hand-computed values.
"""

from __future__ import annotations

import torch

from ..tasks.task import ROLES


def baseline_group_ids(task_types: list[str], roles: list[str], baseline: str = "task_role") -> torch.Tensor:
    """Map every row to the id of the baseline group its advantage is normalised in.

    `task_role` gives one group per (task type, role) pair (TRR++, paper), `role` one group per role, `global` a
    single group (plain REINFORCE++ whitening over the batch).
    """
    if baseline == "task_role":
        # Any task type (families and plugins included): ids in sorted (task type, role) order, the same on every rank.
        pairs = list(zip(task_types, roles, strict=True))
        index = {pair: i for i, pair in enumerate(sorted(set(pairs)))}
        ids = [index[pair] for pair in pairs]
    elif baseline == "role":
        ids = [ROLES.index(r) for r in roles]
    elif baseline == "global":
        ids = [0] * len(roles)
    else:
        raise ValueError(f"Unknown baseline {baseline!r}: use task_role, role or global.")
    return torch.tensor(ids, dtype=torch.long)


def task_relative_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    lengths: torch.Tensor | None = None,
    weighting: str = "sample",
    scale: bool = True,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Whiten ``rewards`` within each baseline group: ``A_i = (R_i - mean_g) / std_g``.

    Args:
        rewards: `(N,)` scalar reward per sequence; NaN marks a row no reward function scored (its advantage is 0 and
            it does not enter any statistic).
        group_ids: `(N,)` baseline group of each row (see :func:`baseline_group_ids`).
        lengths: `(N,)` completion lengths in tokens; needed for ``weighting="token"``.
        weighting: ``"sample"`` computes each group's mean and (Bessel-corrected) standard deviation over sequences
            (paper, Eq. 8); ``"token"`` weights every sequence by its token count and applies Bessel's correction to
            the token count, as the reference code's masked whitening does.
        scale: divide by the group's standard deviation; when False only the mean is subtracted.

    A group whose rewards are all equal gets advantages of exactly 0; so does a group of one row.
    """
    if weighting not in ("sample", "token"):
        raise ValueError(f"Unknown weighting {weighting!r}: use sample or token.")
    if weighting == "token" and lengths is None:
        raise ValueError("weighting='token' needs the completion lengths.")
    rewards = rewards.float()
    advantages = torch.zeros_like(rewards)
    scored = ~torch.isnan(rewards)
    for group in torch.unique(group_ids):
        mask = (group_ids == group) & scored
        if mask.sum() < 2:
            continue  # no baseline to compare against: advantage 0
        r = rewards[mask]
        w = torch.ones_like(r) if weighting == "sample" else lengths[mask].float().clamp(min=1)
        total = w.sum()
        mean = (w * r).sum() / total
        centered = r - mean
        if scale:
            var = (w * centered.pow(2)).sum() / (total - 1)
            centered = centered / torch.sqrt(var + eps)
        advantages[mask] = centered
    return advantages
