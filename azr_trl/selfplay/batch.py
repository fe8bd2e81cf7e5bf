"""Turn one rank's generated rows into the tensors GRPO's loss reads.

This is the text-only tail of GRPO's `_generate_and_score_completions`: padding, masking of truncated completions,
the global token count, old log-probs when generation and optimisation are misaligned, the vLLM importance-sampling
ratio, and reference log-probs (a reference model, or the PEFT base with adapters disabled). Advantages are added by
the caller.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.utils import pad, use_adapter


if TYPE_CHECKING:
    from trl import GRPOTrainer


def _pad(rows: list[list], value: float, side: str, trainer: GRPOTrainer, dtype=None) -> torch.Tensor:
    tensors = [torch.tensor(r, dtype=dtype) for r in rows]
    return pad(tensors, padding_value=value, padding_side=side, pad_to_multiple_of=trainer.pad_to_multiple_of).to(
        trainer.accelerator.device
    )


def clipped_completions(trainer: GRPOTrainer, completion_ids: list[list[int]]) -> list[bool]:
    """Whether each completion ran out of tokens: it does not end with EOS or the pad token (GRPO's rule)."""
    stops = {*trainer.eos_token_ids, trainer._tokenizer.pad_token_id}
    return [not ids or ids[-1] not in stops for ids in completion_ids]


def build_training_batch(
    trainer: GRPOTrainer,
    prompt_ids: list[list[int]],
    completion_ids: list[list[int]],
    sampling_logps: list[list[float | None]] | None,
) -> dict[str, Any]:
    """Pad one rank's rows and compute the log-probabilities GRPO's `_compute_loss` needs."""
    pad_id = trainer._tokenizer.pad_token_id
    prompt = _pad(prompt_ids, pad_id, "left", trainer)
    prompt_mask = _pad([[1] * len(r) for r in prompt_ids], 0, "left", trainer)
    completion = _pad(completion_ids, pad_id, "right", trainer)
    completion_mask = _pad([[1] * len(r) for r in completion_ids], 0, "right", trainer)

    if trainer.mask_truncated_completions:
        truncated = torch.tensor(clipped_completions(trainer, completion_ids), device=completion.device)
        completion_mask = completion_mask * (~truncated).unsqueeze(1).int()
    num_items_in_batch = trainer.accelerator.gather(completion_mask.sum()).sum()

    batch: dict[str, Any] = {
        "prompt_ids": prompt,
        "prompt_mask": prompt_mask,
        "completion_ids": completion,
        "completion_mask": completion_mask,
        "num_items_in_batch": num_items_in_batch,
    }
    input_ids = torch.cat([prompt, completion], dim=1)
    attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
    keep = completion.size(1)
    micro = trainer.args.per_device_train_batch_size

    def logps(model) -> torch.Tensor:
        values, _, _ = trainer._get_per_token_logps_and_entropies(
            model, input_ids, attention_mask, keep, batch_size=micro
        )
        return values

    importance_sampling = trainer.use_vllm and trainer.vllm_importance_sampling_correction
    generate_every = trainer.args.steps_per_generation * trainer.num_iterations
    with torch.no_grad(), disable_gradient_checkpointing(trainer.model, trainer.args.gradient_checkpointing_kwargs):
        old = None
        if trainer.args.gradient_accumulation_steps % generate_every != 0 or importance_sampling:
            # The samples will be trained on by a later version of the weights (or came from vLLM): keep the
            # log-probs of the weights that generated them for the importance ratio.
            old = logps(trainer.model)
            batch["old_per_token_logps"] = old
        if importance_sampling and sampling_logps is not None:
            sampled = _pad([[math.nan if x is None else x for x in r] for r in sampling_logps], 0.0, "right", trainer)
            batch["sampling_per_token_logps"] = sampled
            ratio, clipped = _importance_sampling_ratio(trainer, old, sampled, completion_mask)
            batch["importance_sampling_ratio"] = ratio
            for key, value in _importance_sampling_metrics(trainer, old, sampled, ratio, clipped, completion_mask):
                trainer._metrics["train"][key].append(value)
        if trainer.beta != 0.0:
            if trainer.ref_model is not None:
                batch["ref_per_token_logps"] = logps(trainer.ref_model)
            else:
                # PEFT: the base model with adapters disabled (or a frozen "ref" copy of a pre-trained adapter).
                unwrapped = trainer.accelerator.unwrap_model(trainer.model)
                with use_adapter(unwrapped, adapter_name="ref" if "ref" in unwrapped.peft_config else None):
                    batch["ref_per_token_logps"] = logps(trainer.model)
    return batch


def _importance_sampling_ratio(
    trainer, old: torch.Tensor, sampled: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Correction for the mismatch between vLLM's sampling distribution and the training model (TRL's modes).

    Returns the ratio, per token (``token_*``: ``(B, T)``) or per sequence (``sequence_*``: ``(B, 1)``), and where
    it fell outside the clip range (zeroed by the ``*_mask`` modes, clamped by the ``*_truncate`` modes).
    """
    diff = torch.nan_to_num((old - sampled) * mask, nan=0.0)  # unknown vLLM log-probs: ratio 1
    mode = trainer.vllm_importance_sampling_mode
    if mode.startswith("sequence"):
        diff = diff.sum(dim=-1, keepdim=True)
    ratio = torch.exp(diff)
    low, high = trainer.vllm_importance_sampling_clip_min, trainer.vllm_importance_sampling_clip_max
    outside = (ratio < (-math.inf if low is None else low)) | (ratio > (math.inf if high is None else high))
    if mode.endswith("truncate"):
        return torch.clamp(ratio, min=low, max=high), outside
    return ratio.masked_fill(outside, 0.0), outside


def _importance_sampling_metrics(trainer, old, sampled, ratio, clipped, mask) -> list[tuple[str, float]]:
    """GRPO's ``sampling/*`` metrics over this step's AZR rows, gathered from all ranks, plus how much the
    correction removed: ``clipped_fraction`` (ratios outside the clip range, per sequence or per token as the mode
    works) and ``masked_token_fraction`` (completion tokens whose ratio is zero, so that carry no gradient)."""
    gather = trainer.accelerator.gather
    tokens = mask.bool()
    delta = torch.abs(old - sampled)[tokens]
    delta = delta[~torch.isnan(delta)]  # tokens vLLM returned no log-prob for are left out, not counted as 0
    zero = torch.tensor(0.0, device=mask.device)
    per_sequence = trainer.vllm_importance_sampling_mode.startswith("sequence")
    values = ratio.flatten() if per_sequence else ratio[tokens]
    per_unit = clipped.flatten() if per_sequence else clipped[tokens]
    masked = (ratio.expand_as(mask) == 0) & tokens
    counts = [per_unit.sum(), per_unit.numel(), masked.sum(), tokens.sum()]
    counts = gather(torch.tensor([float(c) for c in counts], device=mask.device)).view(-1, 4).sum(dim=0)
    return [
        ("sampling/sampling_logp_difference/mean", gather(delta.mean() if delta.numel() else zero).mean().item()),
        ("sampling/sampling_logp_difference/max", gather(delta.max() if delta.numel() else zero).max().item()),
        ("sampling/importance_sampling_ratio/min", gather(values.min() if values.numel() else zero).min().item()),
        ("sampling/importance_sampling_ratio/mean", gather(values.mean() if values.numel() else zero).mean().item()),
        ("sampling/importance_sampling_ratio/max", gather(values.max() if values.numel() else zero).max().item()),
        ("sampling/importance_sampling_ratio/clipped_fraction", (counts[0] / counts[1].clamp(min=1)).item()),
        ("sampling/masked_token_fraction", (counts[2] / counts[3].clamp(min=1)).item()),
    ]


# Loss types whose gradient over one optimizer step does not depend on which rows share a micro-batch: each
# micro-batch's loss is a sum of per-row terms over a normaliser that is the same for every micro-batch.
_ORDER_FREE_LOSSES = ("dapo", "dr_grpo", "grpo")
_PER_TOKEN_KEYS = ("old_per_token_logps", "ref_per_token_logps", "sampling_per_token_logps")


def split_micro_batches(batch: dict[str, Any], num_micro_batches: int, group_by_length: bool) -> list[dict[str, Any]]:
    """Cut one generation round's rows into micro-batches, each trimmed to its own longest prompt and completion.

    GRPO shuffles the rows and keeps every micro-batch as wide as the round's longest prompt plus its longest
    completion, so a solve row next to a propose row pays for the propose prompt's length. With
    ``group_by_length`` (safe when the round's micro-batches all feed one optimizer step and the loss is
    order-free), rows are sorted by length first, so rows of similar length share a micro-batch; otherwise they are
    shuffled as GRPO does. Trimming drops only columns that are padding in every row of the micro-batch, so the loss
    and its gradient are unchanged (rotary positions are relative; padding is masked).
    """
    rows = batch["prompt_ids"].size(0)
    if group_by_length:
        lengths = batch["prompt_mask"].sum(dim=1) + batch["completion_mask"].sum(dim=1)
        order = torch.argsort(lengths, stable=True)
    else:
        order = torch.randperm(rows)
    size = rows // num_micro_batches
    return [_trimmed(batch, order[i * size : (i + 1) * size]) for i in range(num_micro_batches)]


def _trimmed(batch: dict[str, Any], index: torch.Tensor) -> dict[str, Any]:
    """The rows ``index`` of ``batch``, without the prompt columns left of every row's prompt and the completion
    columns right of every row's loss mask (a completion masked whole, e.g. a truncated one, adds nothing to the loss
    either way)."""
    part = {
        key: value[index.to(value.device)] if isinstance(value, torch.Tensor) and value.ndim > 0 else value
        for key, value in batch.items()
    }
    prompt_columns = part["prompt_mask"].any(dim=0).nonzero()
    first = int(prompt_columns[0]) if prompt_columns.numel() else part["prompt_mask"].size(1) - 1
    part["prompt_ids"], part["prompt_mask"] = part["prompt_ids"][:, first:], part["prompt_mask"][:, first:]
    completion_columns = part["completion_mask"].any(dim=0).nonzero()
    width = int(completion_columns[-1]) + 1 if completion_columns.numel() else 1
    for key in ("completion_ids", "completion_mask", "importance_sampling_ratio", *_PER_TOKEN_KEYS):
        value = part.get(key)
        if isinstance(value, torch.Tensor) and value.ndim == 2 and value.size(1) > 1:
            part[key] = value[:, :width]
    return part


def groups_by_length(args) -> bool:
    """Whether a round's rows may be grouped by length: one optimizer step per round and an order-free loss."""
    return args.gradient_accumulation_steps == args.steps_per_generation and args.loss_type in _ORDER_FREE_LOSSES
