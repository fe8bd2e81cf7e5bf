"""The `Parameters:` block of `AZRConfig`'s docstring, in TRL's layout, built from the fields' ``help`` metadata.

Each field's help text is written once, in its ``metadata``: `HfArgumentParser` shows it for ``--help`` and
:func:`parameters_doc` renders it under the section the field belongs to, so ``help(AZRConfig)`` reads like
``help(GRPOConfig)``. Each section's title is written once too, on the field that opens it
(:func:`first_in_section`); the fields declared after it belong to it until the next one.
"""

from __future__ import annotations

import dataclasses
import inspect
import textwrap

from .executor.types import REFERENCE_BANNED_MODULES


# The title of each section, by the field that opens it (see `first_in_section`).
_SECTION_TITLES: dict[dataclasses.Field, str] = {}

# Defaults too long to print, by the name of the constant they equal.
_NAMED_DEFAULTS = {"REFERENCE_BANNED_MODULES": list(REFERENCE_BANNED_MODULES)}

_WIDTH = 119
_NAME_INDENT = " " * 8
_HELP_INDENT = " " * 12


def first_in_section(title: str, **field_kwargs) -> dataclasses.Field:
    """``dataclasses.field(**field_kwargs)`` that opens the section ``title`` of the ``Parameters:`` block: this field
    and the ones declared after it, up to the next section, are documented under ``title``.

    The title is kept here, not in the field's ``metadata``: `HfArgumentParser` hands every metadata key but
    ``aliases`` to ``argparse.add_argument``, which rejects a key it does not know.
    """
    opening = dataclasses.field(**field_kwargs)
    _SECTION_TITLES[opening] = title
    return opening


def parameter_sections(config_class: type) -> list[tuple[str, list[dataclasses.Field]]]:
    """The fields ``config_class`` declares itself, in declaration order, grouped under the titles of their sections.

    Declaration order is the order of the class's own annotations: `dataclasses.fields` keeps a field the class
    declares again (``lr_scheduler_type``) where its base class declared it.
    """
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    sections: list[tuple[str, list[dataclasses.Field]]] = []
    for name in inspect.get_annotations(config_class):
        if name not in fields:  # a ClassVar or InitVar: not a parameter
            continue
        declared = fields[name]
        if declared in _SECTION_TITLES:
            title = _SECTION_TITLES[declared]
            if any(title == seen for seen, _ in sections):
                raise TypeError(
                    f"{config_class.__name__}: two fields open the section {title!r}; open it once, on the first of its "
                    "fields, and declare its fields together."
                )
            sections.append((title, []))
        elif not sections:
            raise TypeError(
                f"{config_class.__name__}.{name} is declared before any section of the docstring's Parameters: block: "
                "declare it with first_in_section(title, ...) or move it below a field that opens a section."
            )
        sections[-1][1].append(declared)
    return sections


def _default_text(field: dataclasses.Field) -> str:
    value = field.default_factory() if field.default is dataclasses.MISSING else field.default
    for name, named in _NAMED_DEFAULTS.items():
        if value == named:
            return name
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _type_text(field: dataclasses.Field) -> str:
    annotation = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    return " or ".join(f"`{part.strip()}`" for part in annotation.split("|"))


def _parameter(field: dataclasses.Field) -> str:
    header = f"{_NAME_INDENT}{field.name} ({_type_text(field)}, *optional*, defaults to `{_default_text(field)}`):"
    body = textwrap.fill(
        " ".join(field.metadata["help"].split()),
        width=_WIDTH,
        initial_indent=_HELP_INDENT,
        subsequent_indent=_HELP_INDENT,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return f"{header}\n{body}"


def parameters_doc(config_class: type) -> str:
    """The ``Parameters:`` block for ``config_class``'s docstring (indented as a class docstring's body)."""
    lines = ["    Parameters:"]
    for title, fields in parameter_sections(config_class):
        lines.append(f"{_NAME_INDENT}> {title}\n")
        lines.extend(_parameter(f) for f in fields)
        lines.append("")
    return "\n".join(lines)


def with_parameters_doc(config_class: type) -> str | None:
    """``config_class``'s docstring followed by its generated ``Parameters:`` block (None under ``python -OO``)."""
    if config_class.__doc__ is None:
        return None
    return f"{config_class.__doc__.rstrip()}\n\n{parameters_doc(config_class)}\n    "
