"""A Griffe extension: the API pages document a dataclass's fields with the help texts their metadata holds.

`AZRConfig` and `ExecutorConfig` write each field's help once, in ``metadata["help"]``: `HfArgumentParser` and the
command line show it, and `AZRConfig`'s generated docstring renders it (``azr_trl/azr_config_docs.py``). For the
classes listed in the ``classes`` option, this extension appends a ``Parameters:`` section built from the help of the
fields the class declares itself (inherited ones are documented by their own class), so the API pages show the same
text without a second copy in the source. Their defaults are the runtime ones too: a field declared through a helper
(`first_in_section`) or a ``default_factory`` shows its value, not the call that makes it.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import griffe


class FieldHelp(griffe.Extension):
    def __init__(self, classes: list[str]) -> None:
        super().__init__()
        self.classes = set(classes)

    def on_class_members(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        if cls.path not in self.classes:
            return
        runtime = griffe.dynamic_import(cls.path)
        fields = {field.name: field for field in dataclasses.fields(runtime)}
        # Declaration order: a field the class declares again keeps its place in the class's own source.
        declared = [fields[name] for name in inspect.get_annotations(runtime) if name in fields]
        items = [
            f"    {field.name}: {' '.join(field.metadata['help'].split())}"
            for field in declared
            if field.metadata.get("help")
        ]
        for field in declared:
            member = cls.members.get(field.name)
            if isinstance(member, griffe.Attribute):
                member.value = repr(_default(field))
        if cls.docstring is None:
            return
        parameters = "Parameters:\n" + "\n".join(items)
        cls.docstring = griffe.Docstring(
            f"{cls.docstring.value.rstrip()}\n\n{parameters}",
            lineno=cls.docstring.lineno,
            endlineno=cls.docstring.endlineno,
            parent=cls,
            parser=cls.docstring.parser,
            parser_options=cls.docstring.parser_options,
        )


def _default(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default
