"""Why a row of ``bench_reference_parity.py`` disagrees: its disagreement class and the documented row that explains it.

A class is found from the traits the corpus built the row from (``parity_corpus.py``), in the order of ``RULES``.
Each names the first cell of its row in the tables of ``docs/paper-vs-reference.md`` (``readme_row``: the tables
lived in the README before the documentation site), so the page and this file can be checked against each other
(``tests/test_reference_parity_rows.py``). A row no rule explains is UNEXPLAINED: a gap to fix or to document.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """A disagreement class: rows with any of ``traits``, of one of ``kinds``, under one of ``presets``."""

    name: str
    readme_row: str  # the first cell of the README row, verbatim
    traits: tuple[str, ...]  # a trait ending in ``*`` matches every trait it starts
    kinds: tuple[str, ...] = ("solve", "mc", "propose")
    presets: tuple[str, ...] = ("reference", "paper")
    formats: tuple[str, ...] = ("r1", "chat")
    differing: str | None = None  # only rows on which this verdict differs

    def covers(self, row, preset: str) -> bool:
        if preset not in self.presets or row.kind not in self.kinds or row.fmt not in self.formats:
            return False
        if self.differing is not None and not row.differs(self.differing):
            return False
        return any(t == w or (w.endswith("*") and t.startswith(w[:-1])) for t in row.traits for w in self.traits)


RULES: tuple[Rule, ...] = (
    # ----- reference behaviour we do not copy
    Rule(
        "the reference splits the decoded prompt at an `Assistant:` inside the task",
        "`Assistant:` inside a task's prompt",
        ("prompt:assistant_marker",),
    ),
    Rule(
        "a program that raises Exception, calls exit(), is nondeterministic or returns no literal",
        "which programs are valid",
        (
            "prog:odd:raises_exception",
            "prog:odd:calls_exit",
            "prog:odd:nondeterministic",
            "prog:odd:custom_object",
            "prog:odd:nan_output",
            "val:unknown_gold",
        ),
    ),
    Rule("an answer whose __eq__ is always true", "an object's own `__eq__`", ("val:eq_any",)),
    Rule("non-literal answers, which the reference evaluates", "non-literal answers", ("val:non_literal",)),
    Rule("banned modules", "banned modules", ("prog:odd:banned_os_path", "val:banned_import")),
    Rule("what a program may do in the sandbox", "what a program may do", ("prog:odd:reads_file",)),
    # ----- the paper preset's documented choices (the reference preset copies the reference's behaviour)
    Rule(
        "require_think: a chat completion needs no think block (paper preset)",
        "a think block in a `chat` completion",
        ("env:*",),
        presets=("paper",),
        formats=("chat",),
        differing="format",
    ),
    Rule(
        "call_wrapped_inputs: unwrap (paper preset)",
        "an input written as a call, `f(x)`",
        ("val:call", "inp:call"),
        presets=("paper",),
    ),
    Rule(
        "induction_inputs: exact (paper preset)",
        "induction proposal with more than N input blocks",
        ("count:11", "count:12"),
        kinds=("propose",),
        presets=("paper",),
    ),
    Rule(
        "reject_duplicate_inputs (paper preset)",
        "induction proposal repeating an input",
        ("inp:duplicate",),
        kinds=("propose",),
        presets=("paper",),
    ),
    Rule(
        "reject_message_leaks (paper preset)",
        "induction message that copies the program",
        ("msg:leaks",),
        kinds=("propose",),
        presets=("paper",),
    ),
    Rule("value_equality: typed, True vs 1 (paper preset)", "`True` vs `1`", ("val:bool_int",), presets=("paper",)),
    Rule(
        "pasted_inputs: false, an input followed by a # comment (paper preset)",
        "an input followed by a `# comment`",
        ("inp:input_marker", "box:fenced_comment"),
        presets=("paper",),
    ),
    Rule(
        "pasted_inputs: false, multi-line abduction answers and induction inputs (paper preset)",
        "multi-line abduction answers and induction inputs",
        ("val:multiline", "inp:multiline", "box:fenced_blank_line"),
        presets=("paper",),
    ),
    Rule(
        "pasted_inputs: false, non-literal proposal inputs (paper preset)",
        "non-literal inputs",
        ("inp:non_literal",),
        presets=("paper",),
    ),
    Rule(
        "pasted_inputs: false, keyword arguments in an input (paper preset)",
        "keyword arguments in an input",
        ("inp:kwargs",),
        presets=("paper",),
    ),
    Rule(
        "truncate_outputs: 0, outputs longer than 400 characters kept whole (paper preset)",
        "outputs longer than 400 characters",
        ("out:long",),
        presets=("paper",),
    ),
    Rule(
        "reject_input_calls: false, the text input( in a program (paper preset)",
        "`input(` anywhere in a program",
        ("val:input_call", "prog:odd:input_identifier", "inp:input_call_text"),
        presets=("paper",),
    ),
    Rule(
        "entry_rename: token, the entry function renamed as an identifier (paper preset)",
        "renaming the entry function",
        ("prog:odd:count_entry", "prog:renamed", "prog:nested"),
        kinds=("propose",),
        presets=("paper",),
    ),
)

# A proposal valid on both sides whose reward differs only through its Monte-Carlo rollouts is explained by them.
TRIVIAL_REWARD = Rule(
    "trivial_task_reward: 0 (paper preset)",
    "valid task whose Monte-Carlo solve rate is 0 or 1",
    (),
    presets=("paper",),
)
BROKEN_ENVELOPE = Rule(
    "keep_badly_formatted_tasks: false, a valid task from a completion whose tags are wrong (paper preset)",
    "a task from a completion with broken tags",
    (),
    presets=("paper",),
)
UNEXPLAINED = "UNEXPLAINED"


def explain(row, preset: str) -> tuple[str, str | None]:
    """(class name, README row) of a disagreeing row; (``UNEXPLAINED``, None) when no rule covers it."""
    only_buffer = row.kind == "propose" and not any(row.differs(key) for key in ("reward", "valid", "format"))
    if only_buffer and not row.ours["format"] and row.ours["valid"] and preset in BROKEN_ENVELOPE.presets:
        return BROKEN_ENVELOPE.name, BROKEN_ENVELOPE.readme_row
    if row.kind == "propose" and not row.differs("valid") and not row.differs("format"):
        mc_rows = [m for m in row.ours.get("mc_rows", []) if m.differs("correct")]
        for mc_row in mc_rows:
            name, readme = explain(mc_row, preset)
            if name != UNEXPLAINED:
                return f"through its Monte-Carlo rollouts: {name}", readme
        if not mc_rows and preset in TRIVIAL_REWARD.presets and row.ours.get("mc_rate") in (0.0, 1.0):
            return TRIVIAL_REWARD.name, TRIVIAL_REWARD.readme_row
    for rule in RULES:
        if rule.covers(row, preset):
            return rule.name, rule.readme_row
    return UNEXPLAINED, None


def readme_rows() -> list[str]:
    """Every README row a class names."""
    return [rule.readme_row for rule in (*RULES, TRIVIAL_REWARD, BROKEN_ENVELOPE)]
