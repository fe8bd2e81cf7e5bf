"""Micro-batches of one generation round: grouped by length and trimmed of padding, with the same loss and gradient
as GRPO's shuffled, full-width micro-batches."""

from __future__ import annotations

import pytest
import torch
from trl.trainer.utils import split_tensor_dict

from azr_trl import AZRTrainer
from azr_trl.selfplay.batch import groups_by_length, split_micro_batches

from scripts.tiny_azr_run import length_reward, tiny_config
from tiny import make_tiny_model, make_tiny_tokenizer


def _batch(prompt_lengths, completion_lengths, width_p=6, width_c=5):
    """A padded batch: left-padded prompts, right-padded completions; token ids are row * 100 + position."""
    rows = len(prompt_lengths)
    prompt_ids = torch.zeros(rows, width_p, dtype=torch.long)
    prompt_mask = torch.zeros(rows, width_p, dtype=torch.long)
    completion_ids = torch.zeros(rows, width_c, dtype=torch.long)
    completion_mask = torch.zeros(rows, width_c, dtype=torch.long)
    for r, (p, c) in enumerate(zip(prompt_lengths, completion_lengths, strict=True)):
        prompt_ids[r, width_p - p :] = torch.arange(p) + 100 * r + 1
        prompt_mask[r, width_p - p :] = 1
        completion_ids[r, :c] = torch.arange(c) + 100 * r + 50
        completion_mask[r, :c] = 1
    return {
        "prompt_ids": prompt_ids,
        "prompt_mask": prompt_mask,
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "old_per_token_logps": completion_mask.float() * -1.0,
        "advantages": torch.arange(rows, dtype=torch.float),
        "num_items_in_batch": completion_mask.sum(),
    }


def test_rows_are_grouped_by_length_and_trimmed_to_their_micro_batch():
    batch = _batch([6, 2, 5, 1], [5, 1, 4, 2])
    parts = split_micro_batches(batch, 2, group_by_length=True)
    # Every row once; the two short rows (lengths 3 and 3) together, the long ones (11, 9) together.
    assert sorted(int(a) for p in parts for a in p["advantages"]) == [0, 1, 2, 3]
    assert sorted(parts[0]["advantages"].tolist()) == [1.0, 3.0]
    short, long = parts
    assert short["prompt_ids"].shape == (2, 2) and short["completion_ids"].shape == (2, 2)
    assert long["prompt_ids"].shape == (2, 6) and long["completion_ids"].shape == (2, 5)
    assert short["old_per_token_logps"].shape == (2, 2)
    for part in parts:
        # What was cut was padding in every row: the real tokens are all still there.
        assert int(part["prompt_mask"].sum()) == sum(
            int(batch["prompt_mask"][int(a)].sum()) for a in part["advantages"]
        )
        assert int(part["completion_mask"].sum()) == sum(
            int(batch["completion_mask"][int(a)].sum()) for a in part["advantages"]
        )
        assert part["num_items_in_batch"] is batch["num_items_in_batch"]


def test_a_completion_masked_whole_does_not_widen_its_micro_batch():
    batch = _batch([3, 3], [2, 5])
    batch["completion_mask"][1] = 0  # a truncated completion, masked out of the loss
    (part,) = split_micro_batches(batch, 1, group_by_length=False)
    assert part["completion_ids"].shape == (2, 2)


def test_grouping_only_where_the_gradient_is_order_free(tmp_path):
    assert groups_by_length(tiny_config(str(tmp_path)))  # one optimizer step per round, dapo
    assert not groups_by_length(tiny_config(str(tmp_path), loss_type="bnpo"))  # token mean per micro-batch
    several_updates = tiny_config(str(tmp_path), per_device_train_batch_size=3, gradient_accumulation_steps=2)
    assert not groups_by_length(several_updates)  # two optimizer steps per round: the order matters


@pytest.mark.parametrize("loss_type", ["dapo", "grpo"])
def test_grouped_trimmed_micro_batches_give_grpos_loss_and_gradient(tmp_path, loss_type):
    tokenizer = make_tiny_tokenizer()
    trainer = AZRTrainer(
        make_tiny_model(tokenizer),
        args=tiny_config(str(tmp_path), loss_type=loss_type, entropy_coef=0.0, max_completion_length=16),
        processing_class=tokenizer,
        reward_funcs=[length_reward],
    )
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = trainer.args.gradient_accumulation_steps  # set by train()
    batch = trainer._generate_and_score_completions([{}] * trainer.args.generation_batch_size)
    count = trainer.args.steps_per_generation

    def loss_and_grads(micro_batches):
        trainer.model.zero_grad()
        total = 0.0
        for micro_batch in micro_batches:
            loss = trainer._compute_loss(trainer.model, micro_batch)
            loss.backward()
            total += loss.item()
        return total, [p.grad.clone() for p in trainer.model.parameters() if p.grad is not None]

    grpo_loss, grpo_grads = loss_and_grads(split_tensor_dict(batch, count))
    ours = split_micro_batches(batch, count, group_by_length=True)
    azr_loss, azr_grads = loss_and_grads(ours)
    trainer.close()
    assert sum(p["prompt_ids"].numel() + p["completion_ids"].numel() for p in ours) < (
        batch["prompt_ids"].numel() + batch["completion_ids"].numel()
    ), "nothing was trimmed: the test does not exercise trimming"
    assert azr_loss == pytest.approx(grpo_loss, rel=1e-4, abs=1e-6)
    for ours_grad, theirs in zip(azr_grads, grpo_grads, strict=True):
        torch.testing.assert_close(ours_grad, theirs, rtol=1e-4, atol=1e-6)
