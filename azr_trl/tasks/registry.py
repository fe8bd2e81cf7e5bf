"""Task types by name: the paper's three, the families shipped with azr-trl, and any a user plugs in.

A name in ``task_types`` resolves, in this order, to:

1. a built-in task type (``deduction``, ``abduction``, ``induction``) or a shipped family (``arithmetic``);
2. a class registered in this process with :func:`register_task_type`;
3. an installed package's entry point in the group ``azr_trl.task_types`` (``name = "pkg.module:MySpec"``);
4. a ``"package.module:ClassName"`` string naming a :class:`TaskSpec` subclass directly (its ``task_type`` is the
   name the rows, metrics and buffer use).

```python
from azr_trl.tasks import register_task_type, get_task_spec
register_task_type(MyFamily)                # MyFamily.task_type == "my_family"
spec = get_task_spec("my_family", difficulty=3)
```
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

from .base import TaskSpec
from .families import ArithmeticFamily
from .induction import InductionSpec
from .task import TASK_TYPES, Task
from .triplet import AbductionSpec, DeductionSpec


ENTRY_POINT_GROUP = "azr_trl.task_types"

_BUILTIN: dict[str, type[TaskSpec]] = {
    "deduction": DeductionSpec,
    "abduction": AbductionSpec,
    "induction": InductionSpec,
    ArithmeticFamily.task_type: ArithmeticFamily,
}
_REGISTERED: dict[str, type[TaskSpec]] = {}


def register_task_type(spec_class: type[TaskSpec], name: str | None = None) -> type[TaskSpec]:
    """Make ``spec_class`` available as ``name`` (default: its ``task_type``); usable as a class decorator."""
    name = name or spec_class.task_type
    _check_spec_class(spec_class, name)
    if name in _BUILTIN:
        raise ValueError(f"{name!r} is a built-in task type; give your task type another name.")
    _REGISTERED[name] = spec_class
    return spec_class


def task_spec_class(name: str) -> type[TaskSpec]:
    """The :class:`TaskSpec` subclass ``name`` resolves to; a ``ValueError`` that says how to name one otherwise."""
    if name in _BUILTIN:
        return _BUILTIN[name]
    if name in _REGISTERED:
        return _REGISTERED[name]
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name == name:
            return _checked(entry_point.load(), name, f"entry point {entry_point.value!r}")
    if ":" in name:
        module_name, _, class_name = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ValueError(f"Task type {name!r}: cannot import module {module_name!r} ({err}).") from err
        if not hasattr(module, class_name):
            raise ValueError(f"Task type {name!r}: module {module_name!r} has no {class_name!r}.")
        return _checked(getattr(module, class_name), name, name)
    raise ValueError(
        f"Unknown task type {name!r}: use one of {known_task_types()}, a class registered with register_task_type, "
        f"an entry point of the group {ENTRY_POINT_GROUP!r}, or 'package.module:ClassName'."
    )


def _checked(spec_class: Any, name: str, origin: str) -> type[TaskSpec]:
    _check_spec_class(spec_class, name, origin)
    return spec_class


def _check_spec_class(spec_class: Any, name: str, origin: str | None = None) -> None:
    where = origin or repr(spec_class)
    if not (isinstance(spec_class, type) and issubclass(spec_class, TaskSpec)):
        raise ValueError(f"Task type {name!r}: {where} is not a TaskSpec subclass.")
    if not spec_class.task_type:
        raise ValueError(f"Task type {name!r}: {where} sets no task_type.")


def task_type_name(name: str) -> str:
    """The name rows and buffers use for ``name``: itself, or the ``task_type`` of a ``module:Class`` spec."""
    return task_spec_class(name).task_type


def is_task_type(name: str) -> bool:
    try:
        task_spec_class(name)
    except ValueError:
        return False
    return True


def known_task_types() -> list[str]:
    """The task types available by a plain name in this process (built-in, shipped and registered)."""
    return [*_BUILTIN, *_REGISTERED]


def get_task_spec(task_type: str, **kwargs: Any) -> TaskSpec:
    """An instance of the :class:`TaskSpec` ``task_type`` resolves to; ``kwargs`` go to its constructor.

    Every spec takes :class:`TaskSpec`'s arguments (``num_inputs``, ``reject_multiple_functions``,
    ``banned_modules``, ``rename_entry``, ``strip_top_level_code``, ``answer_extraction``, and the reference-preset
    switches ``call_wrapped_inputs``, ``value_equality``, ``pasted_inputs``, ``truncate_outputs``,
    ``reject_input_calls``, ``entry_rename``, ``keep_badly_formatted_tasks``); induction and the
    families take their own options too (``inputs_rule``; ``difficulty``).
    """
    return task_spec_class(task_type)(**kwargs)


def zero_task(task_type: str) -> Task:
    """The smallest task of ``task_type``: what fills its empty buffer, and what the shortest prompts are built on."""
    return task_spec_class(task_type).zero_task()


__all__ = [
    "ENTRY_POINT_GROUP",
    "TASK_TYPES",
    "get_task_spec",
    "is_task_type",
    "known_task_types",
    "register_task_type",
    "task_spec_class",
    "task_type_name",
    "zero_task",
]
