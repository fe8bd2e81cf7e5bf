"""Throughput of the local sandbox executor on AZR-style validation workloads, side by side with the reference AZR
executor and a naive baseline.

    python benchmarks/bench_executor.py [--reference-dir DIR] [--tasks 400] [--timeout 2] [--repeat 5]
                                        [--loop-repeat 2] [--workers N] [--skip-baseline] [--skip-reference]

Two workloads of the same size: "clean" (valid programs, some runtime errors and banned imports, no loops) and
"loops" (the same with 2% infinite loops). Each runs through:

- ``LocalExecutor``: one forked, locked-down process per program, ``max_in_flight`` at once;
- the reference AZR executor. With ``--reference-dir DIR`` (a checkout of the reference repository, fetched by whoever
  runs the benchmark and never part of this project) it is the real code: ``PythonExecutor.check_all(...,
  check_determinism=True)`` from ``absolute_zero_reasoner/utils/code_utils/python_executor.py``, with the reference
  trainer's settings (one pebble worker, ``ast_check``, its banned words), called once per program as its trainer
  does during validation. It needs pebble, timeout-decorator, regex, python-dateutil, numpy and tqdm:
  ``pip install -e '.[bench]'``. Without the flag, a rebuild of its shape runs instead (``run_reference_style``), and
  the output says so;
- a baseline that starts one ``python -c`` interpreter per program (``workers`` at a time).

Repetitions are interleaved (executor, reference, executor, reference... on the same fresh program texts each time),
so both see the same machine; the output gives best and median rates, CPU time per program over every process
involved, and the ratios. On a shared machine only the ratios of one run mean much.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from azr_trl.executor import ExecJob, ExecutorConfig, make_executor  # noqa: E402
from azr_trl.executor.types import REFERENCE_BANNED_MODULES  # noqa: E402


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


class RealReference:
    """The reference AZR executor itself, imported from a checkout of the reference repository."""

    label = "reference AZR executor (real code: PythonExecutor.check_all, 1 pebble worker)"

    def __init__(self, directory: str, timeout: float):
        module_path = Path(directory, "absolute_zero_reasoner/utils/code_utils/python_executor.py")
        if not module_path.is_file():
            raise SystemExit(
                f"--reference-dir {directory}: no {module_path}; pass a checkout of the reference repository"
            )
        sys.path.insert(0, os.path.abspath(directory))
        try:
            from absolute_zero_reasoner.utils.code_utils.python_executor import PythonExecutor
        except ImportError as err:
            raise SystemExit(
                f"cannot import the reference executor from {directory} ({err}); it needs pebble, timeout-decorator, "
                "regex, python-dateutil, numpy and tqdm: pip install -e '.[bench]'"
            ) from None
        # The reference trainer's settings (azr_ppo_trainer.yaml): one worker, ast_check on. Its own default timeout
        # is 10 s; both executors get the benchmark's --timeout here.
        self.executor = PythonExecutor(timeout_length=timeout, ast_check=True, max_workers=1)
        self.banned = list(REFERENCE_BANNED_MODULES)

    def run(self, jobs: list[ExecJob]) -> list[str]:
        statuses = []
        for job in jobs:
            valid, _ = self.executor.check_all(
                code=job.program,
                inputs=job.input,
                banned_keywords=self.banned,
                check_determinism=True,
                imports=[],
                check_error=False,
                banned_keywords_for_errors_and_exceptions=[],
            )
            statuses.append("ok" if valid else "rejected")
        return statuses

    def close(self) -> None:
        self.executor.cleanup()


class RebuiltReference:
    """``run_reference_style``: the fallback when no checkout of the reference repository is given."""

    label = "reference shape (rebuild: 1 unsandboxed pebble worker, serial; pass --reference-dir for the real code)"

    def __init__(self, timeout: float):
        self.timeout = timeout

    def run(self, jobs: list[ExecJob]) -> list[str]:
        return ["ok" if s == "ok" else "rejected" for s in run_reference_style(jobs, self.timeout)]

    def close(self) -> None:
        pass


def _cpu_seconds() -> float:
    """CPU seconds used so far by this process (all threads), its reaped children and its live children with their
    reaped children (the sandbox template and its programs, the reference's pebble worker)."""
    ticks = os.sysconf("SC_CLK_TCK")
    own = os.times()
    total = own.user + own.system + own.children_user + own.children_system
    me = str(os.getpid())
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:
            total += sum(int(x) for x in fields[11:15]) / ticks
    return total


def _timed(run, jobs: list[ExecJob]) -> tuple[float, float, list]:
    """(programs/s, CPU ms per program, statuses) of one run."""
    cpu, start = _cpu_seconds(), time.perf_counter()
    statuses = run(jobs)
    seconds = time.perf_counter() - start
    return len(jobs) / seconds, (_cpu_seconds() - cpu) / len(jobs) * 1e3, statuses


def _summary(rates: list[float], cpus: list[float]) -> str:
    return (
        f"best {max(rates):7.1f}/s  median {statistics.median(rates):7.1f}/s  "
        f"{statistics.median(cpus):.2f} ms CPU/program  (runs: {', '.join(f'{r:.0f}' for r in rates)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-dir", default=None, help="checkout of the reference AZR repository (real code)")
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=None, help="default: os.cpu_count()")
    parser.add_argument("--max-in-flight", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=5, help="interleaved runs of the clean workload (0: skip)")
    parser.add_argument("--loop-repeat", type=int, default=2, help="interleaved runs of the loops workload (0: skip)")
    parser.add_argument("--skip-baseline", action="store_true", help="skip the python -c baseline")
    parser.add_argument("--skip-reference", action="store_true", help="skip the reference executor")
    args = parser.parse_args()
    workers = args.workers or os.cpu_count() or 1
    config = ExecutorConfig(timeout=args.timeout, workers=workers)
    print(f"{args.tasks} tasks, timeout {args.timeout} s, {workers} workers, python {sys.version.split()[0]}")
    print(f"load average before: {os.getloadavg()[0]:.2f} (other processes share these cores)")
    reference = None
    if not args.skip_reference:
        reference = (
            RealReference(args.reference_dir, args.timeout) if args.reference_dir else RebuiltReference(args.timeout)
        )
        print(f"reference: {reference.label}")
        if not args.reference_dir:
            print("  NOTE: no --reference-dir given: comparing against a rebuild, not the real reference code")
        reference.run(make_workload(20, 0.0, seed=998))  # warm-up: the pool and its worker start
    with make_executor(config, max_in_flight=args.max_in_flight) as executor:
        print(
            f"azr-trl local executor: {executor.max_in_flight} in flight, network namespace: {executor.network_isolated}"
        )
        executor.run(make_workload(50, 0.0, seed=999))  # warm-up

        def run_local(jobs: list[ExecJob]) -> list[str]:
            return [str(r.status) for r in executor.run(jobs)]

        for name, loops, repeat in (("clean", 0.0, args.repeat), ("2% loops", 0.02, args.loop_repeat)):
            if repeat < 1:
                continue
            local_rates, local_cpus, ref_rates, ref_cpus = [], [], [], []
            for rep in range(repeat):
                jobs = make_workload(args.tasks, loops, seed=rep)  # new program texts: no compile-cache hits
                order = [run_local, reference.run] if reference is not None else [run_local]
                for run in order if rep % 2 == 0 else order[::-1]:
                    rate, cpu, statuses = _timed(run, jobs)
                    if run is run_local:
                        local_rates.append(rate)
                        local_cpus.append(cpu)
                        local_statuses = statuses
                    else:
                        ref_rates.append(rate)
                        ref_cpus.append(cpu)
                        ref_valid = statuses.count("ok")
            print(f"[{name}] {len(jobs)} tasks, {repeat} interleaved runs", flush=True)
            print(f"  azr-trl local: {_summary(local_rates, local_cpus)}")
            print(f"    verdicts of the last run: {dict(Counter(local_statuses))}")
            if reference is not None:
                print(f"  reference:     {_summary(ref_rates, ref_cpus)}")
                print(f"    valid in the last run: {ref_valid} of {len(jobs)}")
                best = max(local_rates) / max(ref_rates)
                median = statistics.median(local_rates) / statistics.median(ref_rates)
                print(f"  ratio azr-trl/reference: best {best:.2f}x, median {median:.2f}x", flush=True)
            if not args.skip_baseline:
                start = time.perf_counter()
                run_baseline(jobs, args.timeout, workers)
                base = len(jobs) / (time.perf_counter() - start)
                print(
                    f"  python -c per program (1 run): {base:7.1f}/s  -> azr-trl/baseline {max(local_rates) / base:.1f}x"
                )
    if reference is not None:
        reference.close()


if __name__ == "__main__":
    main()
