"""Throughput of the local sandbox executor on AZR-style validation workloads, against the reference's executor shape
and a naive baseline.

    python benchmarks/bench_executor.py [--tasks 400] [--timeout 2] [--workers N] [--repeat 3] [--skip-baseline]
                                        [--skip-reference]

Two workloads of the same size: "clean" (valid programs, some runtime errors and banned imports, no loops) and
"loops" (the same with 2% infinite loops). Each runs through:

- ``LocalExecutor``: one forked, locked-down process per program, ``max_in_flight`` at once;
- a rebuild of the reference AZR executor's shape (``run_reference_style``): one long-lived pebble worker that
  ``exec``s/``eval``s programs one at a time with no isolation, a SIGALRM timer in the worker, and a pebble timeout
  that kills and replaces the worker. The issue quotes ~1,200 validations/s on 2 cores for the real one when nothing
  times out, and ~25/s when 2% of programs loop with a 2 s timeout; this rebuild measures the same shape on this
  machine;
- a baseline that starts one ``python -c`` interpreter per program (``workers`` at a time).

Rates are the best of ``--repeat`` runs (each on new program texts); this machine's speed drifts between runs.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from azr_trl.executor import ExecJob, ExecutorConfig, make_executor  # noqa: E402


# Program templates in the style of AZR proposals: helpers, classes, recursion, std-lib imports.
VALID_PROGRAMS = [
    ("def f(nums):\n    total = 0\n    for i, n in enumerate(nums):\n        total += n * (i + 1)\n    return total", "{ints}"),
    ("def f(s):\n    counts = {}\n    for ch in s:\n        counts[ch] = counts.get(ch, 0) + 1\n"
     "    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))", "{word!r}"),
    ("from collections import Counter\n\ndef f(words):\n    c = Counter(w[0] for w in words if w)\n"
     "    return c.most_common(2)", "{words!r}"),
    ("import itertools\n\ndef f(xs, k):\n    return [sum(c) for c in itertools.combinations(xs, k)][:10]",
     "{ints}, 2"),
    ("def helper(n):\n    return n * n + 1\n\ndef f(xs):\n    return [helper(x) for x in xs if x % 2 == 0]", "{ints}"),
    ("class Stack:\n    def __init__(self):\n        self.items = []\n    def push(self, x):\n"
     "        self.items.append(x)\n    def pop(self):\n        return self.items.pop()\n\n"
     "def f(ops):\n    s = Stack()\n    out = []\n    for op in ops:\n        if op >= 0:\n            s.push(op)\n"
     "        elif s.items:\n            out.append(s.pop())\n    return out, s.items", "{signed}"),
    ("def f(n):\n    if n < 2:\n        return n\n    return f(n - 1) + f(n - 2)", "{small}"),
    ("import math\n\ndef f(a, b):\n    return math.gcd(a, b), math.lcm(a, b)", "{a}, {b}"),
    ("import re\n\ndef f(text):\n    return re.findall(r'[aeiou]+', text)", "{word!r}"),
    ("def f(matrix):\n    return [list(row) for row in zip(*matrix)]", "[{ints}, {ints2}]"),
    ("from functools import reduce\n\ndef f(xs):\n    return reduce(lambda acc, x: acc * 31 + x, xs, 7) % 1000003",
     "{ints}"),
    ("def f(s, shift):\n    out = []\n    for ch in s:\n        if ch.isalpha():\n"
     "            out.append(chr((ord(ch) - 97 + shift) % 26 + 97))\n        else:\n            out.append(ch)\n"
     "    return ''.join(out)", "{word!r}, {small}"),
    ("import heapq\n\ndef f(xs, k):\n    return heapq.nlargest(k, xs)", "{ints}, 3"),
    ("def f(d):\n    return {v: k for k, v in sorted(d.items())}", "{mapping!r}"),
    ("def f(xs):\n    seen = set()\n    out = []\n    for x in xs:\n        if x not in seen:\n"
     "            seen.add(x)\n            out.append(x)\n    return tuple(out)", "{ints}"),
    ("def f(n):\n    primes = []\n    for k in range(2, n):\n        if all(k % p for p in primes if p * p <= k):\n"
     "            primes.append(k)\n    return primes[-3:]", "{a}"),
]  # fmt: skip
ERROR_PROGRAMS = [
    ("def f(xs):\n    return xs[len(xs) + 3]", "{ints}"),
    ("def f(d):\n    return d['missing']", "{mapping!r}"),
    ("def f(a, b):\n    return a // (b - b)", "{a}, {b}"),
]
BANNED_PROGRAMS = [
    ("import random\n\ndef f(xs):\n    random.shuffle(xs)\n    return xs", "{ints}"),
    ("import time\n\ndef f(x):\n    return time.time() > x", "{a}"),
    ("import os.path\n\ndef f(p):\n    return os.path.join(p, 'x')", "{word!r}"),
]
LOOP_PROGRAM = ("def f(x):\n    while x > -1:\n        x += 1\n    return x", "{a}")


def _fill(template: str, rng: random.Random) -> str:
    words = ["".join(rng.choice("abcdeiou xyz") for _ in range(rng.randint(3, 12))) for _ in range(4)]
    return template.format(
        ints=[rng.randint(0, 50) for _ in range(rng.randint(3, 9))],
        ints2=[rng.randint(0, 50) for _ in range(rng.randint(3, 9))],
        signed=[rng.randint(-5, 20) for _ in range(rng.randint(3, 12))],
        small=rng.randint(1, 15),
        a=rng.randint(10, 300),
        b=rng.randint(1, 99),
        word=words[0],
        words=words,
        mapping={w: i for i, w in enumerate(words)},
    )


def make_workload(n: int, loop_fraction: float, seed: int = 0) -> list[ExecJob]:
    """~85% valid, ~8% runtime errors, ~7% banned imports; ``loop_fraction`` of them replaced by infinite loops."""
    rng = random.Random(seed)
    jobs = []
    for _ in range(n):
        r = rng.random()
        pool = VALID_PROGRAMS if r < 0.85 else ERROR_PROGRAMS if r < 0.93 else BANNED_PROGRAMS
        program, args = rng.choice(pool)
        # Every proposal is a distinct program (no compile cache hits), as in AZR's validation step.
        jobs.append(ExecJob(f"{program}\n\nTASK_ID = {seed * n + len(jobs)}", _fill(args, rng)))
    n_loops = round(n * loop_fraction)
    for i in rng.sample(range(n), n_loops):
        jobs[i] = ExecJob(LOOP_PROGRAM[0], _fill(LOOP_PROGRAM[1], rng))
    return jobs


_BASELINE_WRAPPER = """{program}
_a = f({input})
_b = f({input})
assert repr(_a) == repr(_b), 'nondeterministic'
print(repr(_a))
"""


def run_baseline(jobs: list[ExecJob], timeout: float, workers: int) -> list[str]:
    """One fresh interpreter per program (``python -c``), ``workers`` at a time; no sandboxing at all."""

    def one(job: ExecJob) -> str:
        code = _BASELINE_WRAPPER.format(program=job.program, input=job.input)
        try:
            # -I -S: the fastest plain interpreter start (no site-packages scan); still a full start per program.
            cmd = [sys.executable, "-I", "-S", "-c", code]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "timeout"
        return "ok" if proc.returncode == 0 else "error"

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, jobs))


# The reference's validation call, rebuilt for comparison: the program, two calls compared with `!=`, and the repr as
# the last line, which the worker `eval`s after `exec`-ing the rest.
_REFERENCE_SNIPPET = """{program}
_first = f({input})
if _first != f({input}):
    raise Exception('Non-deterministic code')
repr(_first)"""


def _reference_worker(lines: list[str], timeout: float) -> tuple[object, str]:
    """What the reference's single pool worker does per program: exec all lines but the last, eval the last, each
    under a SIGALRM timer; the result must survive str() and pickle. No isolation of any kind."""
    import pickle
    import signal
    import traceback

    def alarm(signum, frame):
        raise TimeoutError("Timed Out")

    def timed(call, *args):
        previous = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            return call(*args)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    namespace: dict = {}
    try:
        timed(exec, "\n".join(lines[:-1]), namespace)
        result = timed(eval, lines[-1], namespace)
        str(result)
        pickle.dumps(result)
        return result, "Done"
    except BaseException:
        return "", traceback.format_exc().split("\n")[-2]


def _reference_banned(program: str, banned: tuple[str, ...]) -> bool:
    """The reference's banned-import check: any dot-component of an imported name equal to a banned word."""
    import ast

    try:
        tree = ast.parse(program)
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [alias.name for alias in node.names]
        if any(part in banned for name in names for part in name.split(".")):
            return True
    return False


def run_reference_style(jobs: list[ExecJob], timeout: float) -> list[str]:
    """The reference executor's shape: one long-lived pebble worker, one program at a time, a pebble timeout that kills
    and replaces the worker, the banned-import scan and an ``ast.parse`` of the snippet in the caller."""
    import ast
    from concurrent.futures import TimeoutError as FutureTimeout

    from pebble import ProcessPool

    banned = ExecutorConfig().banned_modules
    statuses = []
    with ProcessPool(max_workers=1) as pool:
        for job in jobs:
            if _reference_banned(job.program, banned):
                statuses.append("banned_import")
                continue
            snippet = _REFERENCE_SNIPPET.format(program=job.program, input=job.input)
            try:
                ast.parse(snippet)
            except SyntaxError:
                statuses.append("syntax_error")
                continue
            future = pool.map(_reference_worker, [snippet.split("\n")], [timeout], timeout=timeout)
            try:
                result, report = next(future.result())
                statuses.append("error" if "error" in report.lower() else "ok")
                str(result).strip()
            except FutureTimeout:
                statuses.append("timeout")
    return statuses


def _cpu_seconds(template_pid: int) -> float:
    """CPU seconds used so far by this process, the sandbox template and its reaped children."""
    ticks = os.sysconf("SC_CLK_TCK")
    stat = Path(f"/proc/{template_pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = os.times()
    return own.user + own.system + sum(int(x) for x in stat[11:15]) / ticks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=None, help="default: os.cpu_count()")
    parser.add_argument("--max-in-flight", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3, help="executor runs per workload, each on fresh programs")
    parser.add_argument("--skip-baseline", action="store_true", help="skip the python -c baseline")
    parser.add_argument("--skip-reference", action="store_true", help="skip the reference-style executor")
    args = parser.parse_args()
    workers = args.workers or os.cpu_count() or 1
    config = ExecutorConfig(timeout=args.timeout, workers=workers)
    print(f"{args.tasks} tasks, timeout {args.timeout} s, {workers} workers, python {sys.version.split()[0]}")
    print(f"load average before: {os.getloadavg()[0]:.2f} (other processes share these cores)")
    with make_executor("local", config, max_in_flight=args.max_in_flight) as executor:
        print(f"local executor: {executor.max_in_flight} in flight, network namespace: {executor.network_isolated}")
        executor.run(make_workload(50, 0.0, seed=999))  # warm-up
        for name, loops in (("clean", 0.0), ("2% loops", 0.02)):
            best, cpu, reference = float("inf"), float("inf"), float("inf")
            for rep in range(args.repeat):
                jobs = make_workload(args.tasks, loops, seed=rep)  # new program texts: no compile-cache hits
                cpu_start, start = _cpu_seconds(executor.template_pid), time.perf_counter()
                results = executor.run(jobs)
                best = min(best, time.perf_counter() - start)
                cpu = min(cpu, _cpu_seconds(executor.template_pid) - cpu_start)
                if not args.skip_reference and (loops == 0.0 or rep == 0):  # loops: 8 x 2 s timeouts, once is enough
                    start = time.perf_counter()
                    run_reference_style(jobs, args.timeout)
                    reference = min(reference, time.perf_counter() - start)
            verdicts = Counter(str(r.status) for r in results)
            print(
                f"[{name:8s}] local executor: {len(jobs) / best:7.1f} programs/s, {cpu / len(jobs) * 1e3:.2f} ms CPU per "
                f"program (all processes)  {dict(verdicts)}",
                flush=True,
            )
            if not args.skip_reference:
                print(
                    f"[{name:8s}] reference-style (1 unsandboxed pebble worker, serial): {len(jobs) / reference:7.1f} "
                    f"programs/s  -> executor/reference {reference / best:.2f}x",
                    flush=True,
                )
            if not args.skip_baseline:
                start = time.perf_counter()
                run_baseline(jobs, args.timeout, workers)
                base = time.perf_counter() - start
                print(
                    f"[{name:8s}] python -c baseline: {len(jobs) / base:7.1f} programs/s  -> executor/baseline "
                    f"{base / best:.1f}x",
                    flush=True,
                )


if __name__ == "__main__":
    main()
