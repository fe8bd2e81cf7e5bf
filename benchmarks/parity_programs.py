"""The program library of ``bench_reference_parity.py`` and the literal values written about its outputs.

``PROGRAMS`` make the tasks (and the snippets of proposer prompts); ``PROPOSAL_ONLY`` holds programs whose validity
differs by design (they raise ``Exception``, call ``exit()``, read a file...), which only proposals use. Each program
carries traits (``"out:long"``...) and a weight: how often tasks use it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any


# ----------------------------------------------------------------------------------------------------------------------
# Programs


@dataclass(frozen=True)
class ProgramSeed:
    """A program of the library with a generator of argument lists for it (``draw(rng) -> source``)."""

    name: str
    program: str
    draw: Any
    traits: tuple[str, ...] = ()
    weight: int = 10  # how often tasks and reference snippets use it (rare cases: 1 or 2)


def _ints(rng, lo=0, hi=20, n=None):
    return [rng.randint(lo, hi) for _ in range(n if n is not None else rng.randint(2, 6))]


def _word(rng, alphabet="abcdeilmnorstu"):
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(3, 8)))


PROGRAMS: list[ProgramSeed] = [
    ProgramSeed("odd_doubles", "def f(nums):\n    return [x * 2 for x in nums if x % 2]", lambda r: repr(_ints(r))),
    ProgramSeed(
        "rotate", "def f(word, n):\n    return word[n:] + word[:n]", lambda r: f"{_word(r)!r}, {r.randint(0, 4)}"
    ),
    ProgramSeed(
        "char_counts",
        "def f(s):\n    counts = {}\n    for ch in s:\n        counts[ch] = counts.get(ch, 0) + 1\n"
        "    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))",
        lambda r: repr(_word(r, "aabbc")),
    ),
    ProgramSeed(
        "running_state",
        "def f(ops, start):\n    state = start\n    history = []\n    for op in ops:\n        if op % 3 == 0:\n"
        "            state = state * 2\n        elif op % 3 == 1:\n            state -= op\n        else:\n"
        "            history.append(state)\n    return state, tuple(history)",
        lambda r: f"{_ints(r, 0, 9)!r}, {r.randint(1, 5)}",
    ),
    ProgramSeed(
        "is_sorted",
        "def f(xs):\n    return all(a <= b for a, b in zip(xs, xs[1:]))",
        lambda r: repr(_ints(r, 0, 4, 3)),
    ),
    ProgramSeed(
        "count_flag",
        "def f(xs, k):\n    return sum(1 for x in xs if x > k) == 1",
        lambda r: f"{_ints(r)!r}, {r.randint(5, 15)}",
        ("out:bool",),
    ),
    ProgramSeed("mean", "def f(xs):\n    return sum(xs) / len(xs)", lambda r: repr(_ints(r, 1, 9)), ("out:float",)),
    ProgramSeed(
        "tenths",
        "def f(n):\n    total = 0.0\n    for _ in range(n):\n        total += 0.1\n    return round(total, 10) if n > 5 else total",
        lambda r: str(r.randint(2, 8)),
        ("out:float",),
    ),
    ProgramSeed(
        "gcd_lcm",
        "import math\n\ndef f(a, b):\n    return math.gcd(a, b), a * b // math.gcd(a, b)",
        lambda r: f"{r.randint(2, 60)}, {r.randint(2, 60)}",
        ("imports",),
    ),
    ProgramSeed(
        "floor_roots",
        "import math\n\ndef f(xs):\n    return [math.floor(math.sqrt(x)) for x in xs]",
        lambda r: repr(_ints(r, 0, 99)),
        ("imports",),
    ),
    ProgramSeed(
        "common_letters",
        "from collections import Counter\n\ndef f(words):\n    c = Counter(w[0] for w in words if w)\n"
        "    return c.most_common(2)",
        lambda r: repr([_word(r, "abc") for _ in range(r.randint(2, 5))]),
        ("imports",),
    ),
    ProgramSeed(
        "helper_squares",
        "def helper(n):\n    return n * n + 1\n\ndef f(xs):\n    return [helper(x) for x in xs if x % 2 == 0]",
        lambda r: repr(_ints(r)),
        ("helpers",),
    ),
    ProgramSeed(
        "stack_class",
        "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n"
        "        self.items.append(x)\n\n    def pop(self):\n        return self.items.pop()\n\n\n"
        "def f(ops):\n    s = Stack()\n    out = []\n    for op in ops:\n        if op >= 0:\n            s.push(op)\n"
        "        elif s.items:\n            out.append(s.pop())\n    return out, s.items",
        lambda r: repr(_ints(r, -3, 9, r.randint(3, 7))),
        ("helpers",),
    ),
    ProgramSeed(
        "fib",
        "def f(n):\n    if n < 2:\n        return n\n    return f(n - 1) + f(n - 2)",
        lambda r: str(r.randint(1, 15)),
    ),
    ProgramSeed(
        "vowel_runs",
        "import re\n\ndef f(text):\n    return re.findall(r'[aeiou]+', text)",
        lambda r: repr(_word(r)),
        ("imports",),
    ),
    ProgramSeed(
        "unique_words",
        "def f(s):\n    return {w.lower() for w in s.split()}",
        lambda r: repr(" ".join(_word(r, "abc") for _ in range(r.randint(2, 4)))),
        ("out:set",),
    ),
    ProgramSeed(
        "invert",
        "def f(d):\n    return {v: k for k, v in sorted(d.items())}",
        lambda r: repr({_word(r): i for i in range(r.randint(1, 3))}),
    ),
    ProgramSeed(
        "quote_mix", 'def f(name):\n    return f"{name}\'s \\"tag\\""', lambda r: repr(_word(r)), ("out:quotes",)
    ),
    ProgramSeed(
        "accents",
        "def f(s, n):\n    return (s * n).upper() + 'é→'",
        lambda r: f"{_word(r, 'éaüo')!r}, {r.randint(1, 3)}",
        ("unicode",),
    ),
    ProgramSeed(
        "find_or_none",
        "def f(xs, target):\n    for i, x in enumerate(xs):\n        if x == target:\n            return i\n"
        "    return None",
        lambda r: f"{_ints(r, 0, 5)!r}, {r.randint(0, 5)}",
    ),
    ProgramSeed(
        "long_range",
        "def f(n):\n    return [i * i for i in range(n)]",
        lambda r: str(r.randint(80, 140)),
        ("out:long",),
        2,
    ),
    ProgramSeed(
        "dialogue_turns",
        "def f(lines):\n    return [l.split('Assistant:')[-1].strip() for l in lines if 'Assistant:' in l]",
        lambda r: repr([f"User: {_word(r)}", f"Assistant: {_word(r)}"]),
        ("prompt:assistant_marker",),
        1,
    ),
    ProgramSeed(
        "nested_lists",
        "def f(rows):\n    return [list(row) for row in zip(*rows)]",
        lambda r: repr([_ints(r, 0, 9, 3) for _ in range(r.randint(2, 3))]),
    ),
    ProgramSeed(
        "bits",
        "def f(n):\n    return [n & (1 << i) != 0 for i in range(4)]",
        lambda r: str(r.randint(0, 15)),
        ("out:bool",),
    ),
]

# Programs whose validation differs by design; only proposals use them.
PROPOSAL_ONLY = {
    "raises_exception": ("def f(x):\n    if x > -100:\n        raise Exception('not supported')\n    return x", "3"),
    "raises_value_error": ("def f(x):\n    raise ValueError('bad')", "3"),
    "calls_exit": ("def f(x):\n    exit()\n    return x", "3"),
    "nondeterministic": ("calls = [0]\n\ndef f(x):\n    calls[0] += 1\n    return x + calls[0]", "3"),
    "runtime_error": ("def f(xs):\n    return xs[len(xs) + 2]", "[1, 2]"),
    "custom_object": (
        "class Box:\n    def __init__(self, v):\n        self.v = v\n\ndef f(x):\n    return Box(x)",
        "3",
    ),
    "nan_output": ("def f(x):\n    return float('nan') if x else 0.0", "1"),
    "banned_random": ("import random\n\ndef f(xs):\n    return sorted(xs)", "[3, 1, 2]"),
    "banned_time": ("from time import sleep\n\ndef f(x):\n    return x * 2", "4"),
    "banned_os_path": ("import os.path\n\ndef f(p):\n    return os.path.basename(p)", "'a/b.txt'"),
    "plain_os": ("import os\n\ndef f(p):\n    return p.upper()", "'abc'"),
    "input_identifier": (
        "def parse_input(s):\n    return s.split(',')\n\ndef f(s):\n    return len(parse_input(s))",
        "'a,b,c'",
    ),
    "count_entry": ("def count(s, ch):\n    return s.count(ch) + 1", "'banana', 'a'"),
    "eq_any": ("class Any:\n    def __eq__(self, other):\n        return True\n\ndef f(x):\n    return [x, x]", "1"),
    "syntax_error": ("def f(x)\n    return x + 1", "1"),
    "reads_file": (
        "def f(path):\n    with open(path) as handle:\n        return len(handle.read()) > 0",
        "'/etc/hostname'",
    ),
    "top_level_error": ("def f(x):\n    return x + 1\n\nf(undefined_name)", "1"),
}


# ----------------------------------------------------------------------------------------------------------------------
# Literal values: respelling, mutation


def respell(value: Any, rng: random.Random) -> str:
    """The same value written differently: no spaces after commas, double quotes where that is still valid."""
    if isinstance(value, str):
        if '"' not in value and "\\" not in repr(value) and "\n" not in value:
            return '"' + value + '"'
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(respell(v, rng) for v in value) + "]"
    if isinstance(value, tuple):
        inner = ",".join(respell(v, rng) for v in value)
        return "(" + inner + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, dict):
        return "{" + ",".join(f"{respell(k, rng)}:{respell(v, rng)}" for k, v in value.items()) + "}"
    if isinstance(value, set) and value:
        items = list(value)
        rng.shuffle(items)
        return "{" + ",".join(respell(v, rng) for v in items) + "}"
    return repr(value)


def mutate(value: Any, rng: random.Random) -> Any:
    """A different value of a similar shape."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rng.choice([1, -1, 2])
    if isinstance(value, float):
        return value + 1.5
    if isinstance(value, str):
        return value + rng.choice(["x", "a", " "]) if value else "x"
    if isinstance(value, list | tuple):
        if not value:
            return type(value)([0])
        items = list(value)
        items[-1] = mutate(items[-1], rng)
        return type(value)(items)
    if isinstance(value, dict):
        return {**value, "zz": 0}
    if isinstance(value, set):
        return value | {999}
    return 0


def bool_int_swap(value: Any) -> Any | None:
    """The value with bools and 0/1 swapped (``True`` -> ``1``), or None when it holds neither."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, list | tuple):
        swapped = [bool_int_swap(v) for v in value]
        if any(s is not None for s in swapped):
            return type(value)(v if s is None else s for v, s in zip(value, swapped, strict=True))
    return None


def non_literal(value: Any) -> str | None:
    """An expression (not a literal) that evaluates to ``value``, or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return f"{value - 1} + 1"
    if isinstance(value, float):
        return f"{value / 2!r} + {value / 2!r}"
    if isinstance(value, str) and len(value) >= 2:
        return f"{value[:1]!r} + {value[1:]!r}"
    if isinstance(value, list) and len(value) >= 2:
        return f"{value[:1]!r} + {value[1:]!r}"
    if isinstance(value, list) and not value:
        return "[0] * 0"
    return None
