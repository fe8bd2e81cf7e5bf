"""The task buffer: one FIFO list of validated tasks per task type, with seeding, sampling, dedup and export.

Every operation is deterministic given the constructor's ``seed`` and the sequence of calls, so ranks that make the
same calls with the same inputs hold identical buffers. The sampler RNG is part of :meth:`TaskBuffer.state_dict`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..seeding.seed_files import load_seed_file, resolve_seed_files
from ..tasks.parsing import input_shape
from ..tasks.registry import is_task_type, known_task_types, zero_task
from ..tasks.task import TASK_TYPES, Task
from . import buffer_export


STATE_FORMAT = "azr-trl/task-buffer"
STATE_VERSION = 1
REFERENCE_STRATEGIES = ("uniform", "recency")
TOO_LONG_ROLES = ("propose", "solve")  # a task too long to show as a propose-prompt reference / in a solve prompt
SOLVE_STRATEGIES = ("max_new", "uniform")

__all__ = ["TaskBuffer", "load_seed_file"]

RngLike = random.Random | int | None


class TaskBuffer:
    """Validated tasks, one list per task type, oldest first.

    Args:
        task_types: the task types kept (``deduction``, ``abduction``, ``induction``).
        max_size: tasks kept per type; past it the oldest unpinned task is evicted (FIFO). Pinned seeds are never
            evicted, so a buffer whose pinned seeds alone exceed ``max_size`` keeps them all and nothing else.
        seed: seed of the sampler RNG used when no ``rng`` is passed to the sampling methods.
    """

    def __init__(self, task_types: Sequence[str] = TASK_TYPES, max_size: int = 16384, seed: int = 0):
        unknown = [t for t in task_types if not is_task_type(t)]
        if unknown or not task_types:
            raise ValueError(f"task_types={list(task_types)!r}: choose a non-empty subset of {known_task_types()}.")
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}.")
        self.task_types: tuple[str, ...] = tuple(dict.fromkeys(task_types))
        self.max_size = int(max_size)
        self.seed = int(seed)
        self.rng = random.Random(self.seed)
        self.step = 0  # the latest step passed to add()
        self._clear()

    def _clear(self) -> None:
        self._tasks: dict[str, list[Task]] = {t: [] for t in self.task_types}
        self._keys: dict[str, list[str]] = {t: [] for t in self.task_types}
        self._key_set: dict[str, set[str]] = {t: set() for t in self.task_types}
        self._output_types: dict[str, Counter] = {t: Counter() for t in self.task_types}
        self._type_names: dict[str, tuple[str, ...]] = {}  # task key -> output type names
        self._value_counts: dict[tuple[str, str], Counter] = {}  # lazily built, dropped on every change
        # (role, prompt task type) -> keys of tasks whose prompt for that role did not fit the engine's token budget.
        self._too_long: dict[tuple[str, str], set[str]] = {}

    # ------------------------------------------------------------------------------------------------------------------
    # Contents

    def __len__(self) -> int:
        return sum(len(v) for v in self._tasks.values())

    def size(self, task_type: str) -> int:
        return len(self._tasks[self._check_type(task_type)])

    def tasks(self, task_type: str) -> list[Task]:
        """The tasks of one type, oldest first (a new list; treat the tasks as read-only)."""
        return list(self._tasks[self._check_type(task_type)])

    def __contains__(self, task: Task) -> bool:
        return task.task_type in self._key_set and task.key() in self._key_set[task.task_type]

    def _check_type(self, task_type: str) -> str:
        if task_type not in self._tasks:
            raise ValueError(f"This buffer holds {list(self.task_types)}, not {task_type!r}.")
        return task_type

    # ------------------------------------------------------------------------------------------------------------------
    # Adding

    def add(self, tasks: Iterable[Task], step: int) -> list[bool]:
        """Append validated tasks (routed by ``task_type``) at training ``step``; returns which were new.

        A task whose canonical key (normalised program AST + normalised input(s)) is already in its buffer is
        skipped. Tasks are stored as copies with ``step`` set. Past ``max_size`` the oldest unpinned tasks go.
        """
        self.step = max(self.step, int(step))
        added: list[bool] = []
        for task in tasks:
            task_type = self._check_type(task.task_type)
            key = task.key()
            if key in self._key_set[task_type]:
                added.append(False)
                continue
            self._append(task_type, replace(task, step=int(step), extra=dict(task.extra)), key)
            self._evict(task_type)
            added.append(True)
        return added

    def add_seeds(self, tasks: Iterable[Task] | None = None, pin: bool = True) -> int:
        """Add seed tasks at step 0 (pinned by default); types this buffer does not hold are ignored.

        Any buffer still empty afterwards gets its task type's zero task (``TaskSpec.zero_task``): the identity
        triplet ``f(a) = a`` on ``'Hello world'`` for deduction/abduction, the identity with six inputs of different
        types for induction, a family's smallest task for a family. Returns the
        number of tasks added.
        """
        tasks = [replace(t, pinned=pin) for t in (tasks or ()) if t.task_type in self._tasks]
        count = sum(self.add(tasks, 0))
        for task_type in self.task_types:
            if not self._tasks[task_type]:
                zero = zero_task(task_type)
                count += sum(self.add([replace(zero, pinned=pin)], 0))
        return count

    def seed_from_files(
        self, paths: Sequence[str | os.PathLike], executor: Any, extra_seeds: Sequence[Task] = (), **spec_kwargs: Any
    ) -> tuple[int, list[str]]:
        """Re-validate and add the rows of JSONL seed files, with ``extra_seeds`` (validated seeds from elsewhere, e.g.
        a task family's), then zero tasks for empty types.

        ``builtin`` stands for the seed files shipped with the package. Returns ``(tasks added, errors)``; each error
        names the file and line. Raises ``ValueError`` when files were given but not one row is valid, because
        self-play from an unintended seed set is worse than stopping.
        """
        tasks: list[Task] = []
        errors: list[str] = []
        paths = resolve_seed_files(paths)
        for path in paths:
            file_tasks, file_errors = load_seed_file(path, executor, task_types=self.task_types, **spec_kwargs)
            tasks += file_tasks
            errors += file_errors
        if paths and not tasks:
            details = "; ".join(errors[:5]) or "the files are empty"
            raise ValueError(f"No valid seed task in {[str(p) for p in paths]}: {details}")
        return self.add_seeds([*tasks, *extra_seeds]), errors

    def _append(self, task_type: str, task: Task, key: str) -> None:
        self._tasks[task_type].append(task)
        self._keys[task_type].append(key)
        self._key_set[task_type].add(key)
        self._output_types[task_type].update(self._types_of(task, key))
        self._value_counts.clear()

    def _evict(self, task_type: str) -> None:
        tasks = self._tasks[task_type]
        while len(tasks) > self.max_size:
            index = next((i for i, t in enumerate(tasks) if not t.pinned), None)
            if index is None:
                return
            key = self._keys[task_type].pop(index)
            task = tasks.pop(index)
            self._key_set[task_type].discard(key)
            self._output_types[task_type].subtract(self._types_of(task, key))
            if not any(key in keys for keys in self._key_set.values()):
                self._type_names.pop(key, None)
            self._value_counts.clear()

    def _types_of(self, task: Task, key: str) -> tuple[str, ...]:
        if key not in self._type_names:
            from azr_trl.executor import parse_literal

            outputs = [task.output] if task.output is not None else task.outputs
            names = []
            for out in outputs:
                ok, value = parse_literal(out)
                names.append(type(value).__name__ if ok else "unparsable")
            self._type_names[key] = tuple(names)
        return self._type_names[key]

    # ------------------------------------------------------------------------------------------------------------------
    # Sampling

    def _rng(self, rng: RngLike) -> random.Random:
        if rng is None:
            return self.rng
        if isinstance(rng, random.Random):
            return rng
        return random.Random(rng)

    def _reference_pool(self, task_type: str) -> list[Task]:
        """The tasks a ``task_type`` propose prompt may show, minus those marked too long for it."""
        names = [self._check_type(task_type)]
        if task_type == "induction":
            # Induction prompts show one program from the deduction/abduction buffers.
            names = [name for name in ("deduction", "abduction") if name in self._tasks and self._tasks[name]] or names
        marked = self._too_long.get(("propose", task_type), set())
        return [
            task
            for name in names
            for task, key in zip(self._tasks[name], self._keys[name], strict=True)
            if key not in marked
        ]

    def sample_references(self, task_type: str, k: int, rng: RngLike = None, strategy: str = "uniform") -> list[Task]:
        """``k`` distinct reference tasks for a propose prompt (fewer when the pool is smaller).

        Deduction/abduction draw from their own buffer; induction draws its program from the deduction and abduction
        buffers together. ``strategy``: ``uniform``, or ``recency`` (weights ``step + 1``, so seeds weigh least).
        Tasks marked too long for ``task_type`` propose prompts (:meth:`mark_too_long`) are never drawn.
        """
        if strategy not in REFERENCE_STRATEGIES:
            raise ValueError(f"Unknown reference strategy {strategy!r}: use one of {list(REFERENCE_STRATEGIES)}.")
        pool = self._reference_pool(task_type)
        rng = self._rng(rng)
        k = min(int(k), len(pool))
        if k <= 0:
            return []
        if strategy == "uniform":
            picks = rng.sample(range(len(pool)), k)
        else:
            # Weighted sampling without replacement (Efraimidis-Spirakis): the k largest u ** (1 / w).
            keyed = [(rng.random() ** (1.0 / (t.step + 1)), i) for i, t in enumerate(pool)]
            picks = [i for _, i in sorted(keyed, reverse=True)[:k]]
        return [_copy(pool[i]) for i in picks]

    def sample_solve(self, task_type: str, n: int, strategy: str = "max_new", rng: RngLike = None) -> list[Task]:
        """``n`` tasks for the solver.

        ``max_new`` takes tasks added at the latest step first (uniformly, without replacement), then fills from the
        rest of the buffer; ``uniform`` draws from the whole buffer. Draws are without replacement while tasks last,
        then with replacement, so exactly ``n`` tasks come back. Tasks marked too long for their solve prompt
        (:meth:`mark_too_long`) are never drawn; when every task is marked, the list is empty.
        """
        if strategy not in SOLVE_STRATEGIES:
            raise ValueError(f"Unknown solver sampling strategy {strategy!r}: use one of {list(SOLVE_STRATEGIES)}.")
        pool = self._tasks[self._check_type(task_type)]
        if not pool:
            raise ValueError(f"The {task_type} buffer is empty: seed it before sampling solver tasks.")
        rng = self._rng(rng)
        n = int(n)
        eligible = self._solvable(range(len(pool)), task_type)
        if not eligible:
            return []
        first = self._solvable(self._new_indices(task_type), task_type) if strategy == "max_new" else []
        picks = rng.sample(first, min(n, len(first)))
        chosen = set(picks)
        rest = [i for i in eligible if i not in chosen]
        picks += rng.sample(rest, min(n - len(picks), len(rest)))
        picks += rng.choices(eligible, k=n - len(picks))
        return [_copy(pool[i]) for i in picks]

    def _new_indices(self, task_type: str) -> list[int]:
        tasks = self._tasks[task_type]
        i = len(tasks)
        while i > 0 and tasks[i - 1].step == self.step:
            i -= 1
        return list(range(i, len(tasks)))

    def new_count(self, task_type: str) -> int:
        """Tasks of ``task_type`` added at the latest step."""
        return len(self._new_indices(self._check_type(task_type)))

    # ------------------------------------------------------------------------------------------------------------------
    # Tasks too long for a prompt

    def mark_too_long(self, task: Task, role: str, task_type: str) -> bool:
        """Never pick ``task`` again for ``role`` in ``task_type`` prompts; returns whether it was newly marked.

        ``role`` is ``propose`` (shown as a reference in a ``task_type`` propose prompt) or ``solve`` (its own solve
        prompt). The mark is kept by task key, so it holds for a task not yet (or no longer) in the buffer, and it is
        part of :meth:`state_dict`.
        """
        if role not in TOO_LONG_ROLES:
            raise ValueError(f"role must be one of {list(TOO_LONG_ROLES)}, got {role!r}.")
        keys = self._too_long.setdefault((role, self._check_type(task_type)), set())
        key = task.key()
        if key in keys:
            return False
        keys.add(key)
        return True

    def is_too_long(self, task: Task, role: str, task_type: str) -> bool:
        """Whether :meth:`mark_too_long` excluded ``task`` from ``role`` in ``task_type`` prompts."""
        return task.key() in self._too_long.get((role, task_type), ())

    def _solvable(self, indices: Iterable[int], task_type: str) -> list[int]:
        """``indices`` of the ``task_type`` buffer minus the tasks marked too long for their solve prompt."""
        marked = self._too_long.get(("solve", task_type), set())
        keys = self._keys[task_type]
        return [i for i in indices if keys[i] not in marked]

    # ------------------------------------------------------------------------------------------------------------------
    # Statistics

    def value_counts(self, task_type: str, field: str) -> Counter:
        """How often each normalised ``input`` or ``output`` value occurs in a buffer (induction: all pairs)."""
        cache_key = (self._check_type(task_type), field)
        if cache_key not in self._value_counts:
            counts: Counter = Counter()
            for t in self._tasks[task_type]:
                if field == "input":
                    counts.update(input_shape(v) for v in ([t.input] if t.input is not None else t.inputs))
                elif field == "output":
                    counts.update(v.strip() for v in ([t.output] if t.output is not None else t.outputs))
                else:
                    raise ValueError(f"field must be 'input' or 'output', got {field!r}.")
            self._value_counts[cache_key] = counts
        return self._value_counts[cache_key]

    def stats(self) -> dict[str, float]:
        """Per task type: ``azr/buffer/{type}/size``, ``/new`` (added at the latest step), ``/distinct_output_types``
        and ``/mean_program_lines``."""
        out: dict[str, float] = {}
        for t in self.task_types:
            tasks = self._tasks[t]
            prefix = f"azr/buffer/{t}"
            out[f"{prefix}/size"] = float(len(tasks))
            out[f"{prefix}/new"] = float(self.new_count(t))
            out[f"{prefix}/distinct_output_types"] = float(sum(1 for c in self._output_types[t].values() if c > 0))
            lines = [len(task.program.strip().splitlines()) for task in tasks]
            out[f"{prefix}/mean_program_lines"] = sum(lines) / len(lines) if lines else 0.0
        return out

    def fingerprint(self) -> str:
        """A short digest of every task key, in order: equal on ranks that hold identical buffers."""
        digest = hashlib.sha256()
        for task_type in self.task_types:
            digest.update(task_type.encode() + b"\1")
            for key in self._keys[task_type]:
                digest.update(key.encode() + b"\0")
        return digest.hexdigest()[:16]

    def state_fingerprint(self) -> str:
        """A short digest of the whole ``state_dict`` (tasks, steps, the sampler's RNG state, too-long marks): what
        the end of a run compares across ranks."""
        return hashlib.sha256(json.dumps(self.state_dict(), sort_keys=True, default=str).encode()).hexdigest()[:16]

    # ------------------------------------------------------------------------------------------------------------------
    # State

    def state_dict(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot: settings, tasks, their keys, the latest step, the sampler RNG state and the
        tasks marked too long for a prompt."""
        version, internal, gauss = self.rng.getstate()
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "task_types": list(self.task_types),
            "max_size": self.max_size,
            "seed": self.seed,
            "step": self.step,
            "rng_state": [version, list(internal), gauss],
            "tasks": {t: [task.to_dict() for task in self._tasks[t]] for t in self.task_types},
            "keys": {t: list(self._keys[t]) for t in self.task_types},
            "too_long": {f"{role}/{t}": sorted(keys) for (role, t), keys in sorted(self._too_long.items())},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` snapshot (this buffer takes its task types, cap and RNG state)."""
        if state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
            raise ValueError(
                f"Not a task-buffer state (format {state.get('format')!r}, version {state.get('version')!r}); "
                f"expected {STATE_FORMAT!r} version {STATE_VERSION}."
            )
        self.task_types = tuple(state["task_types"])
        self.max_size = int(state["max_size"])
        self.seed = int(state["seed"])
        self.step = int(state["step"])
        version, internal, gauss = state["rng_state"]
        self.rng.setstate((version, tuple(internal), gauss))
        self._clear()
        for t in self.task_types:
            rows = state["tasks"].get(t, [])
            keys = state.get("keys", {}).get(t)
            for i, row in enumerate(rows):
                task = Task.from_dict(row)
                self._append(t, task, keys[i] if keys and i < len(keys) else task.key())
        for name, marked in state.get("too_long", {}).items():  # absent in states saved before the marks existed
            role, _, task_type = name.partition("/")
            self._too_long[(role, task_type)] = set(marked)

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`state_dict` as JSON, atomically (a crash never leaves a half-written file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(self.state_dict(), handle)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> TaskBuffer:
        """A buffer restored from a file written by :meth:`save` (e.g. ``checkpoint-N/azr_buffer.json``)."""
        try:
            state = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"No task-buffer file at {path}.") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from None
        buffer = cls(task_types=state.get("task_types", TASK_TYPES))
        buffer.load_state_dict(state)
        return buffer

    # ------------------------------------------------------------------------------------------------------------------
    # Export (see buffer_export.py)

    def rows(self, task_type: str | None = None) -> list[dict[str, Any]]:
        """Tasks as plain rows (``azr-trl validate`` schema plus ``task_type``, ``step``, ``pinned``)."""
        return buffer_export.task_rows(self, task_type)

    def to_jsonl(self, path: str | os.PathLike, task_type: str | None = None) -> int:
        """Write the tasks as JSONL (loadable again as a seed file); returns the row count."""
        return buffer_export.write_jsonl(self, path, task_type)

    def to_dataset(self, task_type: str | None = None):
        """A ``datasets.Dataset`` of the tasks (all types, or one), with fixed features."""
        return buffer_export.to_dataset(self, task_type)

    def to_dataset_dict(self):
        """A ``datasets.DatasetDict`` with one split per non-empty task type."""
        return buffer_export.to_dataset_dict(self)

    def dataset_card(self, repo_id: str) -> str:
        """The Hub dataset card (README.md) describing this buffer."""
        return buffer_export.dataset_card(self, repo_id)

    def push_to_hub(
        self, repo_id: str, private: bool | None = None, token: str | None = None, commit_message: str | None = None
    ) -> None:
        """Push the buffer to the Hub as a dataset (one split per task type) with a dataset card."""
        buffer_export.push_to_hub(self, repo_id, private=private, token=token, commit_message=commit_message)


def _copy(task: Task) -> Task:
    return replace(task, inputs=list(task.inputs), outputs=list(task.outputs), extra=dict(task.extra))
