"""The reference-parity benchmark without a reference checkout: its corpus is seeded and varied, and every disagreement
class it can report names a row of the tables in docs/paper-vs-reference.md."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import parity_classes  # noqa: E402
import parity_corpus  # noqa: E402
from parity_programs import PROGRAMS  # noqa: E402


def _readme_first_cells() -> set[str]:
    lines = (ROOT / "docs" / "paper-vs-reference.md").read_text().splitlines()
    return {line.split("|")[1].strip() for line in lines if line.startswith("| ") and not line.startswith("|---")}


def test_every_disagreement_class_names_a_readme_row():
    cells = _readme_first_cells()
    missing = [row for row in parity_classes.readme_rows() if row not in cells]
    assert not missing, f"docs/paper-vs-reference.md rows named by benchmarks/parity_classes.py but absent: {missing}"


def _task(seed, rng):
    from azr_trl.executor.checks import parse_args

    src = seed.draw(rng)
    # Any literal will do as the gold output here: the corpus only writes answers about it.
    return {"program": seed.program, "input": src, "output": repr(parse_args(src)[0])}


@pytest.mark.parametrize("fmt", ["r1", "chat"])
def test_corpus_is_seeded_and_covers_every_choice(fmt):
    def draw(seed_value):
        rng = random.Random(seed_value)
        texts, traits = [], set()
        for i in range(1500):
            task = _task(PROGRAMS[i % len(PROGRAMS)], rng)
            text, found = parity_corpus.solve_completion("deduction", task, fmt, rng)
            texts.append(text)
            traits.update(found)
        return texts, traits

    texts, traits = draw(0)
    assert texts == draw(0)[0] and texts != draw(1)[0]
    envelopes = parity_corpus.R1_ENVELOPES if fmt == "r1" else parity_corpus.CHAT_ENVELOPES
    assert {f"env:{name}" for name, _ in envelopes} <= traits
    assert {f"box:{name}" for name, _ in parity_corpus.BOXES} <= traits
