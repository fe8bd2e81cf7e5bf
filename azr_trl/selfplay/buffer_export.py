"""Exporting a task buffer: plain rows, JSONL (a valid seed file), a ``datasets`` dataset, and the Hub with a card.

:class:`~azr_trl.selfplay.buffer.TaskBuffer` exposes these as methods (``buffer.to_jsonl(path)``, ``buffer.push_to_hub(repo)``).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any


if TYPE_CHECKING:
    from .buffer import TaskBuffer


_EXPORT_FIELDS = ("task_type", "program", "input", "output", "inputs", "outputs", "message", "step", "pinned")
_TRIPLET_FIELDS = ("task_type", "program", "input", "output")
_INDUCTION_FIELDS = ("task_type", "program", "inputs", "outputs", "message")


def task_rows(buffer: TaskBuffer, task_type: str | None = None) -> list[dict[str, Any]]:
    """The buffer's tasks as plain rows (``azr-trl validate`` schema plus ``task_type``, ``step``, ``pinned``)."""
    types = buffer.task_types if task_type is None else (task_type,)
    out = []
    for t in types:
        fields = _INDUCTION_FIELDS if t == "induction" else _TRIPLET_FIELDS
        for task in buffer.tasks(t):
            row = {name: getattr(task, name) for name in fields}
            row.update(step=task.step, pinned=task.pinned, valid=True, status="ok", error=None)
            out.append(row)
    return out


def write_jsonl(buffer: TaskBuffer, path: str | os.PathLike, task_type: str | None = None) -> int:
    """Write the tasks as JSONL (loadable again as a seed file); returns the row count."""
    rows = task_rows(buffer, task_type)
    with open(path, "w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return len(rows)


def to_dataset(buffer: TaskBuffer, task_type: str | None = None):
    """A ``datasets.Dataset`` of the tasks (all types, or one), with fixed features."""
    from datasets import Dataset

    rows = [
        {k: r.get(k, [] if k in ("inputs", "outputs") else None) for k in _EXPORT_FIELDS}
        for r in task_rows(buffer, task_type)
    ]
    return Dataset.from_list(rows, features=_dataset_features())


def to_dataset_dict(buffer: TaskBuffer):
    """A ``datasets.DatasetDict`` with one split per non-empty task type."""
    from datasets import DatasetDict

    return DatasetDict({t: to_dataset(buffer, t) for t in buffer.task_types if buffer.size(t)})


def dataset_card(buffer: TaskBuffer, repo_id: str) -> str:
    """The Hub dataset card (README.md) describing the buffer."""
    return _dataset_card(repo_id, {t: buffer.size(t) for t in buffer.task_types}, buffer.step)


def push_to_hub(
    buffer: TaskBuffer,
    repo_id: str,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
) -> None:
    """Push the buffer to the Hub as a dataset (one split per task type) with a dataset card."""
    from huggingface_hub import DatasetCard

    message = commit_message or f"AZR task buffer at step {buffer.step}"
    to_dataset_dict(buffer).push_to_hub(repo_id, private=private, token=token, commit_message=message)
    DatasetCard(dataset_card(buffer, repo_id)).push_to_hub(repo_id, token=token, commit_message=message)


def _dataset_features():
    from datasets import Features, List, Value

    text = Value("string")
    return Features(
        task_type=text,
        program=text,
        input=text,
        output=text,
        inputs=List(text),
        outputs=List(text),
        message=text,
        step=Value("int64"),
        pinned=Value("bool"),
    )


def _dataset_card(repo_id: str, sizes: dict[str, int], step: int) -> str:
    split_lines = "\n".join(f"- `{t}`: {n} tasks" for t, n in sizes.items() if n)
    configs = "\n".join(f"  - split: {t}\n    path: data/{t}-*" for t, n in sizes.items() if n)
    return f"""---
license: apache-2.0
tags:
- azr-trl
- absolute-zero
- code-reasoning
- self-play
configs:
- config_name: default
  data_files:
{configs}
---

# {repo_id}

Validated code-reasoning tasks from an [Absolute Zero](https://arxiv.org/abs/2505.03335) self-play run with
azr-trl, Absolute Zero on Hugging Face TRL (buffer state at step {step}). Every task was proposed by the model and
checked by a sandboxed Python executor.

## Splits
{split_lines}

## Fields
- `task_type`: `deduction` (program + input -> output), `abduction` (program + output -> input) or `induction`
  (input/output pairs + message -> program).
- `program`: Python source whose entry function is `f`.
- `input` / `output`: for deduction and abduction, the argument list of one call (Python literals, e.g.
  `'ab', [1, 2]`) and `repr(f(*input))`.
- `inputs` / `outputs` / `message`: for induction, N argument lists, their outputs (the first half is shown to the
  solver, the rest is hidden) and the proposer's message.
- `step`: the training step at which the task entered the buffer (0 = seed); `pinned`: a seed that is never evicted.

The JSONL form of these rows is a valid seed file for `azr-trl` (`seed_files` in the training config).

## Citation
```bibtex
@inproceedings{{zhao2025absolute,
  title     = {{Absolute Zero: Reinforced Self-play Reasoning with Zero Data}},
  author    = {{Zhao, Andrew and others}},
  booktitle = {{Advances in Neural Information Processing Systems}},
  year      = {{2025}},
  eprint    = {{2505.03335}},
  archivePrefix = {{arXiv}},
}}
```
"""
