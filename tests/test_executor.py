"""The local sandbox executor against a hostile corpus (tests/hostile/*.prog) and benign programs.

Every hostile program runs in one batch; each test then asserts the program's verdict and that nothing escaped: no
canary file, no connection to the listening socket, no process of the batch left alive, the template (and this
process) alive and unrestarted, the working directory still empty.
"""

from __future__ import annotations

import asyncio
import glob
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from azr_trl.executor import ExecJob, ExecutorConfig, ExecutorError, Verdict, make_executor
from azr_trl.executor.local import default_in_flight
from azr_trl.tasks.induction import verify_induction


pytestmark = pytest.mark.slow  # launches the sandbox processes

HOSTILE_DIR = Path(__file__).with_name("hostile")
CANARY_GLOB = "/tmp/azr-hostile-canary*"
SECRET = "hf_canary_secret_do_not_leak"


def _load_case(path: Path) -> dict:
    """A corpus file: ``# verdict: ...``, ``# input: ...``, optional ``# error: ...`` / ``# check_banned: false``."""
    meta, lines = {}, path.read_text().splitlines()
    for line in lines:
        if not line.startswith("# ") or ":" not in line:
            break
        key, value = line[2:].split(":", 1)
        meta[key.strip()] = value.strip()
    return {
        "name": path.stem,
        "program": path.read_text(),
        "verdict": meta["verdict"],
        "input": meta["input"],
        "error": meta.get("error"),
        "check_banned": meta.get("check_banned", "true") != "false",
    }


CASES = {case["name"]: case for case in map(_load_case, sorted(HOSTILE_DIR.glob("*.prog")))}


def _processes_in_groups(groups: set[int]) -> list[int]:
    """Pids of live (non-zombie) processes whose process group is one of ``groups``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) in groups:
            found.append(int(entry))
    return found


def _live_after_kill(groups: set[int], wait: float = 3.0) -> list[int]:
    """Like ``_processes_in_groups``, giving just-killed processes a moment to finish dying."""
    deadline = time.monotonic() + wait
    while (alive := _processes_in_groups(groups)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


@pytest.fixture(scope="module")
def executor():
    os.environ["HF_TOKEN"] = SECRET  # must not reach the sandbox
    os.environ["WANDB_API_KEY"] = SECRET
    try:
        ex = make_executor(ExecutorConfig(timeout=1.5, workers=2, memory_mb=256))
    finally:
        del os.environ["HF_TOKEN"], os.environ["WANDB_API_KEY"]
    yield ex
    ex.close()


@pytest.fixture(scope="module")
def hostile_run(executor):
    for path in glob.glob(CANARY_GLOB):
        os.remove(path)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    template_pid, restarts = executor.template_pid, executor.restarts
    jobs = [
        ExecJob(case["program"], case["input"].replace("PORT", str(port)), check_banned=case["check_banned"])
        for case in CASES.values()
    ]
    start = time.monotonic()
    results = executor.run(jobs)
    elapsed = time.monotonic() - start
    template_survived = executor.template_pid == template_pid and executor.restarts == restarts
    os.kill(template_pid, 0)  # raises if the template died
    try:
        connection = listener.accept()
    except BlockingIOError:
        connection = None
    listener.close()
    yield {
        "results": dict(zip(CASES, results, strict=True)),
        "connection": connection,
        "elapsed": elapsed,
        "template_survived": template_survived,
        "pids": list(executor.last_pids),
    }


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_program(name, hostile_run, executor):
    case, result = CASES[name], hostile_run["results"][name]
    assert str(result.status) == case["verdict"], (result.status, result.error)
    if case["error"]:
        assert case["error"] in (result.error or ""), result.error
    if result.status is Verdict.OK:
        assert result.output is not None and SECRET not in result.output
    else:
        assert result.output is None
    # Nothing escaped.
    assert glob.glob(CANARY_GLOB) == []
    assert hostile_run["connection"] is None
    assert os.listdir(executor.workdir) == []
    assert hostile_run["template_survived"]  # no program brought the template (or this process) down


def test_hostile_batch_leaves_no_process(hostile_run, executor):
    pids = set(hostile_run["pids"])
    assert len(pids) >= len([c for c in CASES.values() if c["verdict"] not in ("syntax_error", "invalid_input")]) - 10
    assert _processes_in_groups(pids) == []
    # One batch: the 1.5 s timeouts overlap instead of adding up.
    assert hostile_run["elapsed"] < 15


def test_environment_is_scrubbed(hostile_run):
    assert hostile_run["results"]["env_secrets"].output == "[None, None, []]"


def test_poisoned_builtins_do_not_leak(hostile_run, executor):
    assert hostile_run["results"]["poison_builtins"].output == "42"
    [result] = executor.run([ExecJob("def f(x):\n    return len(x), sorted(x)", "'cba'")])
    assert result.output == "(3, ['a', 'b', 'c'])"


BENIGN = [
    ("def f(x):\n    return x * 2", "21", "42"),
    ("def helper(n):\n    return n * n\n\ndef f(xs):\n    return [helper(x) for x in xs]", "[1, 2, 3]", "[1, 4, 9]"),
    (
        "class Counter:\n    def __init__(self):\n        self.n = 0\n    def add(self, k):\n        self.n += k\n"
        "        return self\n\ndef f(a, b):\n    return Counter().add(a).add(b).n",
        "2, 5",
        "7",
    ),
    ("def f(n):\n    return 1 if n < 2 else n * f(n - 1)", "10", "3628800"),
    (
        "from collections import Counter, deque\n\ndef f(s):\n    d = deque(sorted(Counter(s).items()))\n"
        "    d.rotate(1)\n    return list(d)",
        "'abracadabra'",
        "[('r', 2), ('a', 5), ('b', 2), ('c', 1), ('d', 1)]",
    ),
    (
        "import itertools\n\ndef f(xs):\n    return list(itertools.permutations(xs, 2))[:3]",
        "'abc'",
        str(list(__import__("itertools").permutations("abc", 2))[:3]),
    ),
    (
        "import math\n\ndef f(a, b):\n    return math.gcd(a, b), math.isqrt(a), round(math.pi, 4)",
        "84, 36",
        "(12, 9, 3.1416)",
    ),
    ("import re\n\ndef f(s):\n    return re.findall(r'\\d+', s)", "'a1b22c333'", "['1', '22', '333']"),
    ("from typing import List\n\ndef f(xs: List[int]) -> int:\n    return sum(xs)", "[1, 2, 3]", "6"),
    ("from fractions import Fraction\n\ndef f(a, b):\n    return str(Fraction(a, b))", "6, 8", "'3/4'"),
    ("def f(d, k):\n    return {v: k2 for k2, v in d.items() if k2 != k}", "{'a': 1, 'b': 2}, 'a'", "{2: 'b'}"),
    (
        "def f():\n    return {'x': (1, 2.5, None, True), 'y': {3, 1, 2}, 'z': b'\\x00'}",
        "",
        "{'x': (1, 2.5, None, True), 'y': {1, 2, 3}, 'z': b'\\x00'}",
    ),
    ("def f(s):\n    print('debug', s)\n    return s[::-1]", "'stressed'", "'desserts'"),
    ("def f(x):\n    return x + 1\n\nif __name__ == '__main__':\n    print(f(int(input())))", "1", "2"),
    ("def f(x):\n    return x", "[[1, [2, [3]]], {'k': (4,)}]  # trailing comment", "[[1, [2, [3]]], {'k': (4,)}]"),
]


def test_benign_programs_exact_outputs(executor):
    results = executor.run([ExecJob(program, args) for program, args, _ in BENIGN])
    for (program, _, expected), result in zip(BENIGN, results, strict=True):
        assert result.status is Verdict.OK, (program, result)
        assert result.output == expected, program


def test_results_in_input_order_and_async(executor):
    jobs = [ExecJob(f"def f(x):\n    return x + {k}", str(k)) for k in range(40)]
    results = asyncio.run(executor.arun(jobs))
    assert [r.output for r in results] == [str(2 * k) for k in range(40)]


def test_streamed_batch_mixes_chunks_programs_and_rejects(executor):
    """A batch longer than several chunks: the same program text in many chunks, parent-side rejects in between, and
    every result still at its own index."""
    shared = "from collections import Counter\n\ndef f(s):\n    return sorted(Counter(s).items())[0]"
    jobs = []
    for k in range(70):
        if k % 10 == 3:
            jobs.append(ExecJob("def f(x:\n", "1"))  # syntax error: answered by the parent, never sent
        elif k % 2:
            jobs.append(ExecJob(shared, repr("ab" * (k % 5 + 1))))
        else:
            jobs.append(ExecJob(f"def f(x):\n    return x * {k}", str(k)))
    results = executor.run(jobs)
    assert len(results) == len(jobs)
    for k, result in enumerate(results):
        if k % 10 == 3:
            assert result.status is Verdict.SYNTAX_ERROR
        elif k % 2:
            assert result.output == "('a', " + str(k % 5 + 1) + ")", (k, result)
        else:
            assert result.output == str(k * k), (k, result)
    assert executor.run([ExecJob("def f(x):\n    return -x", "5")])[0].output == "-5"  # the template kept going


def test_identical_jobs_run_once(executor):
    """Repeated (program, input) jobs in one batch share one run and its result; a different input, entry or number
    of runs is another job."""
    program = "def f(x):\n    return [x, id(object()) > 0]\n\ndef g(x):\n    return -x"
    repeated = ExecJob(program, "3")
    jobs = [repeated, ExecJob(program, "4"), repeated, ExecJob(program, "3", entry="g"), repeated]
    jobs.append(ExecJob(program, "3", determinism_runs=1))
    before = executor.programs_run
    results = executor.run(jobs)
    assert [r.output for r in results] == ["[3, True]", "[4, True]", "[3, True]", "-3", "[3, True]", "[3, True]"]
    assert results[0] is results[2] is results[4]
    assert executor.programs_run - before == 4
    assert len(executor.last_pids) == 4  # one process per distinct job


def test_banned_modules_are_gone_only_for_checked_programs(executor):
    """The template drops the banned modules it loaded itself (``time``, ``os.path``): a checked program that reaches
    one by import is caught at run time, an unchecked one imports it normally."""
    sneaky = "import builtins\n\ndef f(x):\n    getattr(builtins, '__imp' + 'ort__')('ti' + 'me')\n    return x"
    unchecked = "import time\n\ndef f(x):\n    return type(time.monotonic()).__name__"
    sneaky_result, unchecked_result = executor.run([ExecJob(sneaky, "1"), ExecJob(unchecked, "1", check_banned=False)])
    assert sneaky_result.status is Verdict.BANNED_IMPORT and "time" in sneaky_result.error
    assert unchecked_result.output == "'float'"


def test_sandbox_identity(executor):
    program = "import os\n\ndef f():\n    return os.getuid(), os.getcwd() == WORKDIR, os.environ.get('HF_TOKEN')"
    [result] = executor.run([ExecJob(program.replace("WORKDIR", repr(executor.workdir)), "", check_banned=False)])
    uid = 65534 if os.geteuid() == 0 else os.geteuid()
    assert result.output == f"({uid}, True, None)"
    if os.geteuid() == 0:
        assert executor.network_isolated


def test_programs_are_first_in_line_for_the_oom_killer(executor):
    """Children inherit the template's oom_score_adj: out of memory, the kernel kills a program before the trainer."""
    assert Path(f"/proc/{executor.template_pid}/oom_score_adj").read_text().strip() == "1000"
    assert Path("/proc/self/oom_score_adj").read_text().strip() != "1000"


def test_default_in_flight_is_bounded_by_cores_and_memory():
    gib = 1024 * 1024  # in KiB
    assert default_in_flight(2, 1024, available_kib=64 * gib) == 32  # 16 per worker
    assert default_in_flight(64, 1024, available_kib=1024 * gib) == 128  # never more than 128
    assert default_in_flight(2, 1024, available_kib=12 * gib) == 12  # what memory holds at 1 GiB each
    assert default_in_flight(2, 2048, available_kib=gib // 2) == 1
    assert default_in_flight(2, None, available_kib=gib) == 32  # no memory limit: cores only


def test_a_low_descriptor_limit_caps_the_programs_in_flight():
    """Asked for more programs in flight than the template's descriptors allow (two per child), it runs fewer at once
    instead of failing to open their pipes."""
    import subprocess
    import sys

    code = (
        "import resource\nresource.setrlimit(resource.RLIMIT_NOFILE, (128, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))\n"
        "from azr_trl.executor import ExecJob, make_executor\n"
        "with make_executor(max_in_flight=400) as ex:\n"
        "    results = ex.run([ExecJob('def f(x):\\n    return x * 2', str(k)) for k in range(300)])\n"
        "    print(sum(r.output == str(2 * k) for k, r in enumerate(results)), ex.restarts)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert (done.returncode, done.stdout) == (0, "300 0\n"), done.stderr[-2000:]


def test_a_fork_the_kernel_refuses_costs_only_its_programs_verdict(tmp_path):
    """Out of processes (a pids cgroup of 8 here), the template gives the programs it could not start a `crashed`
    verdict and goes on, instead of dying and restarting; the programs it started get their real verdicts."""
    import json
    import subprocess
    import sys

    pids = Path("/sys/fs/cgroup/pids")
    if not (pids / "cgroup.procs").exists() or not os.access(pids, os.W_OK):
        pytest.skip("no writable pids cgroup (v1) on this machine")
    group = pids / f"azr-test-{os.getpid()}"
    group.mkdir()
    try:
        (group / "pids.max").write_text("8")
        code = (
            f"import json, os\nopen({str(group / 'cgroup.procs')!r}, 'w').write(str(os.getpid()))\n"
            "from azr_trl.executor import ExecJob, make_executor\n"
            "with make_executor(max_in_flight=30) as ex:\n"
            "    results = ex.run([ExecJob('def f(x):\\n    return x * 2', str(k)) for k in range(40)])\n"
            "    print(json.dumps([[r.status.value, r.output, r.error] for r in results] + [ex.restarts]))"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    finally:
        group.rmdir()
    assert done.returncode == 0, done.stderr[-2000:]
    *results, restarts = json.loads(done.stdout)
    assert restarts == 0
    ran = [k for k, (status, output, _) in enumerate(results) if status == "ok" and output == str(2 * k)]
    refused = [error for status, _, error in results if status == "crashed"]
    assert ran and refused and len(ran) + len(refused) == 40
    assert all("could not start the program" in error for error in refused)


def test_set_order_is_the_same_across_processes(executor):
    job = ExecJob("def f(n):\n    return list({'k%d' % i for i in range(n)})", "40")
    first = executor.run([job])[0].output
    with make_executor(ExecutorConfig(timeout=5, workers=1)) as other:
        second = other.run([job])[0].output
    assert first == second and first is not None


def test_template_death_costs_no_verdict(executor):
    """Killing the template mid-batch: it restarts, orphans die, every job still gets its real verdict."""
    slow = "def f(x):\n    total = 0\n    for i in range(300000):\n        total += i % 7\n    return x"
    jobs = [ExecJob(slow, str(k)) for k in range(24)]
    victim = executor.template_pid
    killer = threading.Timer(0.15, os.kill, (victim, signal.SIGKILL))
    killer.start()
    results = executor.run(jobs)
    killer.join()
    assert executor.template_pid != victim and executor.restarts >= 1
    assert [r.output for r in results] == [str(k) for k in range(24)]
    assert _live_after_kill(set(executor.last_pids)) == []


def test_interrupted_batch_leaves_nothing_behind(executor):
    loop = "def f(x):\n    while True:\n        pass"
    prepared = [executor._prepare(ExecJob(loop, "1")), executor._prepare(ExecJob("def f(x):\n    return x", "1"))]

    def interrupt(_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        executor._run_prepared(prepared, interrupt)  # the quick job finishes while the loop still runs
    assert _live_after_kill(set(executor.last_pids)) == []
    assert executor.run([ExecJob("def f(x):\n    return -x", "3")])[0].output == "-3"


def test_induction_with_always_equal_object_scores_zero(executor):
    liar = "class Liar:\n    def __eq__(self, other):\n        return True\n\ndef f(x):\n    return Liar()"
    honest = "def f(x):\n    return x + 1"
    scores = verify_induction(
        executor, [liar, honest, None], [["1", "2"], ["1", "2"], ["1"]], [["2", "3"]] * 2 + [["2"]]
    )
    assert scores == [0.0, 1.0, 0.0]


def _other_python() -> str | None:
    """An interpreter on this machine whose version differs from the running one (code objects cannot cross)."""
    import shutil
    import subprocess
    import sys

    for name in ("/usr/bin/python3.11", "/usr/bin/python3", "python3.12", "python3.10"):
        path = shutil.which(name)
        if not path:
            continue
        probe = subprocess.run([path, "-c", "import sys; print(sys.hexversion)"], capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() != str(sys.hexversion):
            return path
    return None


def test_other_interpreter_version_is_refused_clearly():
    other = _other_python()
    if other is None:
        pytest.skip("no interpreter of another version on this machine")
    with pytest.raises(ExecutorError, match="is not this Python"):
        make_executor(ExecutorConfig(timeout=5, workers=1), python=other)


def test_executor_works_when_the_caller_has_no_stderr():
    """A daemon may run with descriptor 2 closed: the template must not mistake its own pipes for free slots."""
    import subprocess
    import sys

    code = (
        "import os\nos.close(2)\nfrom azr_trl.executor import ExecJob, make_executor\n"
        "with make_executor() as ex:\n    print(ex.run([ExecJob('def f(x):\\n    return x * 2', '21')])[0].output)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (0, "42\n")


def test_standard_library_modules_that_need_banned_ones_still_import(executor):
    """The template keeps banned modules out of sys.modules, but the set-up imports and unchecked programs get them
    back: unittest imports os.path itself, and an unchecked program may use os.path."""
    stdlib = "import unittest\n\ndef f(x):\n    return unittest.TestCase.__name__"
    unchecked = "import os.path\n\ndef f(x):\n    return os.path.join('a', x)"
    checked_dynamic = (
        "import builtins\n\ndef f(x):\n    return getattr(builtins, '__imp' + 'ort__')('o' + 's.path').sep"
    )
    first, second, third = executor.run(
        [ExecJob(stdlib, "1"), ExecJob(unchecked, "'b'", check_banned=False), ExecJob(checked_dynamic, "1")]
    )
    assert first.output == "'TestCase'", first
    assert second.output == "'a/b'", second
    assert third.status is Verdict.BANNED_IMPORT, third


def test_a_forged_result_costs_only_its_own_verdict(executor):
    """A program that writes its own message to the result pipe and exits gets a verdict; the batch goes on."""
    forger = "import os\n\ndef f(x):\n    os.write(3, b'bogus\\0\\0x')\n    os._exit(0)"
    results = executor.run([ExecJob(forger, "1", check_banned=False), ExecJob("def f(x):\n    return x", "7")])
    assert results[0].status is Verdict.RUNTIME_ERROR and "malformed" in results[0].error
    assert results[1].output == "7"


TAMPER_WITH_THE_HOOK = """import builtins


def f(x):
    # A refusal raises from inside the audit hook, so the traceback holds the hook's frame: try to disarm it through
    # everything that frame exposes (its locals, mutable containers among them, and any function's code or cells).
    try:
        open('/etc/passwd')
    except PermissionError as err:
        tb = err.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            for name, value in list(frame.f_locals.items()):
                try:
                    if isinstance(value, list):
                        value[:] = [False] * len(value)
                    for cell in getattr(value, '__closure__', None) or ():
                        cell.cell_contents = False
                    frame.f_locals[name] = False
                except Exception:
                    pass
            tb = tb.tb_next
    builtins.len = lambda obj: 0
    builtins.range = lambda *args: ()
    getattr(builtins, '__imp' + 'ort__')('ti' + 'me')
    return x
"""


def test_the_audit_hook_cannot_be_disarmed_through_its_frame(executor):
    [result] = executor.run([ExecJob(TAMPER_WITH_THE_HOOK, "1")])
    assert result.status is Verdict.BANNED_IMPORT, result
