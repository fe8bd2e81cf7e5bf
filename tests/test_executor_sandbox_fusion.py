"""The ``sandbox_fusion`` backend against a tiny local server speaking SandboxFusion's ``/run_code`` format.

No docker here, so the server below implements the documented request/response (the ``sandbox-fusion`` client's
``RunCodeRequest`` / ``RunCodeResponse`` models): it runs the request's ``code`` with ``python -c`` under
``run_timeout`` and answers ``{"status", "message", "compile_result", "run_result": {"status", "execution_time",
"return_code", "stdout", "stderr"}, ...}``. The real client library is used end to end.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


pytest.importorskip("sandbox_fusion")

from azr_trl.executor import ExecJob, ExecutorConfig, ExecutorError, Verdict, make_executor  # noqa: E402
from azr_trl.executor.sandbox_fusion import parse_response  # noqa: E402


pytestmark = pytest.mark.slow  # the fake server starts one interpreter per request


class _RunCodeHandler(BaseHTTPRequestHandler):
    requests_seen: list[dict] = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_POST(self):
        if self.path != "/run_code":
            self.send_error(404)
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests_seen.append(body)
        start = time.monotonic()
        try:
            proc = subprocess.run(
                [sys.executable, "-S", "-c", body["code"]],
                capture_output=True,
                text=True,
                timeout=body["run_timeout"],
                stdin=subprocess.DEVNULL,
            )
            run = {"status": "Finished", "return_code": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}
            status = "Success" if proc.returncode == 0 else "Failed"
        except subprocess.TimeoutExpired:
            run = {"status": "TimeLimitExceeded", "return_code": None, "stdout": "", "stderr": ""}
            status = "Failed"
        run["execution_time"] = time.monotonic() - start
        payload = {
            "status": status,
            "message": "",
            "compile_result": None,
            "run_result": run,
            "executor_pod_name": None,
            "files": {},
        }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _RunCodeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


def test_sandbox_fusion_verdicts(server):
    executor = make_executor(ExecutorConfig(backend="sandbox_fusion", timeout=3.0), endpoint=server, concurrency=8)
    cases = [
        (ExecJob("from collections import Counter\ndef f(s):\n    return sorted(Counter(s).items())", "'abca'"), "ok"),
        (ExecJob("def f(x):\n    print('noise ' * 10)\n    return [x, {x: (x,)}]", "2"), "ok"),
        (ExecJob("def f(x):\n    while True:\n        pass", "1"), "timeout"),
        (ExecJob("def f(x):\n    return 1 / 0", "1"), "runtime_error"),
        (ExecJob("def f(x):\n    return object()", "1"), "unrepresentable"),
        (ExecJob("def g(x):\n    return x", "1"), "no_entry_function"),
        (ExecJob("def f(x, acc=[]):\n    acc.append(x)\n    return len(acc)", "1"), "nondeterministic"),
        (
            ExecJob("def f(x):\n    return __import__('ran' + 'dom').random()", "1", check_banned=False),
            "nondeterministic",
        ),
        (ExecJob("def f(x):\n    exec('import ran' + 'dom')\n    return x", "1"), "banned_import"),
        (ExecJob("import random\ndef f(x):\n    return x", "1"), "banned_import"),  # parent-side, no request
        (ExecJob("def f(x):\n    return x", "__import__('os')"), "invalid_input"),  # parent-side
        (ExecJob("def f(x):\n    print('z' * 100000)\n    return x", "1"), "output_too_large"),
    ]
    _RunCodeHandler.requests_seen.clear()
    results = executor.run([job for job, _ in cases], progress=False)
    for (job, expected), result in zip(cases, results, strict=True):
        assert str(result.status) == expected, (job.program, result)
    assert results[0].output == "[('a', 2), ('b', 1), ('c', 1)]"
    assert results[1].output == "[2, {2: (2,)}]"
    # Parent-side verdicts never reach the server; every request is a python run with our timeout.
    assert len(_RunCodeHandler.requests_seen) == len(cases) - 2
    assert all(r["language"] == "python" and r["run_timeout"] == 3.0 for r in _RunCodeHandler.requests_seen)
    # Same interface from async code.
    [again] = asyncio.run(executor.arun([cases[0][0]]))
    assert again.output == results[0].output


def test_sandbox_fusion_unreachable_server_raises():
    executor = make_executor(
        ExecutorConfig(backend="sandbox_fusion", timeout=1.0), endpoint="http://127.0.0.1:9", max_attempts=1
    )
    with pytest.raises(ExecutorError, match="127.0.0.1:9"):
        executor.run([ExecJob("def f(x):\n    return x", "1")])


def test_parse_response_fallbacks():
    from sandbox_fusion import RunCodeResponse

    def response(**run):
        base = {"status": "Finished", "execution_time": 0.1, "return_code": 0, "stdout": "", "stderr": ""}
        return RunCodeResponse(status="Failed", message="", run_result={**base, **run})

    mark = "<<m>>"
    assert parse_response(response(stdout=f'x\n{mark}["ok", "1", null]\n'), mark, 1).output == "1"
    # A program printing a fake marker earlier loses to the real, last one.
    faked = f'{mark}["ok", "999", null]\n{mark}["runtime_error", null, "E"]\n'
    assert parse_response(response(stdout=faked), mark, 1).status is Verdict.RUNTIME_ERROR
    assert parse_response(response(status="TimeLimitExceeded"), mark, 1).status is Verdict.TIMEOUT
    assert parse_response(response(return_code=1, stderr="Traceback\nMemoryError"), mark, 1).status is Verdict.MEMORY
    assert parse_response(response(return_code=-11), mark, 1).status is Verdict.CRASHED
    assert parse_response(response(return_code=1, stderr="boom"), mark, 1).error == "boom"
