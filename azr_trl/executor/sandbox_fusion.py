"""The ``sandbox_fusion`` backend: the executor interface over a SandboxFusion server (PyPI ``sandbox-fusion``).

Start a server with docker (the image AZR's later releases use)::

    docker run -d --rm -p 8080:8080 volcengine/sandbox-fusion:server-20250609

then ``make_executor(ExecutorConfig(backend="sandbox_fusion"), endpoint="http://localhost:8080")`` (or set
``SANDBOX_FUSION_ENDPOINT``). Install the client with ``pip install 'azr-trl[sandbox]'``.

The parent-side checks are the local backend's (compile, banned modules, literal inputs, literal outputs). Each job
becomes one ``/run_code`` request (``language="python"``) whose program wraps the model's code: it runs ``f`` on
freshly parsed arguments ``runs`` times, captures prints, and writes one line ``<marker>{json result}`` to the real
stdout. Requests run concurrently (``concurrency`` at a time); a request the server cannot serve after the client's
retries raises :class:`ExecutorError` instead of turning into a verdict, so an outage never reads as invalid programs.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
from collections.abc import Callable

from .base import Executor, ExecutorError, PreparedJob
from .types import ExecResult, ExecutorConfig, Verdict


# The program sent to the server. It only uses the standard library and mirrors the local child's verdicts.
_WRAPPER = r"""
import ast, json, os, sys

_SOURCE = {source!r}
_INPUT = {input!r}
_ENTRY = {entry!r}
_RUNS = {runs!r}
_BANNED = {banned!r}
_MAX_OUTPUT = {max_output!r}
_MAX_STDOUT = {max_stdout!r}
_MARK = {mark!r}
_real_stdout = sys.stdout
_state = {{"banned": None, "printed": 0}}


class _Overflow(BaseException):
    pass


class _Capture:
    def write(self, text):
        _state["printed"] += len(text)
        if _state["printed"] > _MAX_STDOUT:
            raise _Overflow()
        return len(text)

    def flush(self):
        pass


def _hook(event, args):
    if event == "import" and args and type(args[0]) is str:
        parts = args[0].split(".")
        for entry in _BANNED:
            wanted = entry.split(".")
            n = len(wanted)
            if any(parts[i:i + n] == wanted for i in range(len(parts) - n + 1)) or (n == 1 and entry in parts):
                _state["banned"] = _state["banned"] or args[0]
                raise ImportError("banned module: " + args[0])


def _describe(err):
    text = str(err)
    return (type(err).__name__ + (": " + text if text else ""))[:300]


def _run():
    call = ast.parse("f(" + _INPUT + "\n)", mode="eval").body
    copies = [tuple(ast.literal_eval(node) for node in call.args) for _ in range(_RUNS)]
    for name in list(sys.modules):
        if any(name == b or name.startswith(b + ".") for b in _BANNED):
            del sys.modules[name]
    sys.addaudithook(_hook)
    sys.stdout = sys.stderr = _Capture()
    namespace = {{"__name__": "__program__"}}  # a program's `if __name__ == "__main__":` block does not run
    outputs, keep = [], []
    try:
        exec(compile(_SOURCE, "<program>", "exec", dont_inherit=True), namespace)
        fn = namespace.get(_ENTRY)
        if not callable(fn):
            return "no_entry_function", None, "the program defines no function " + repr(_ENTRY)
        for args in copies:
            result = fn(*args)
            keep.append(result)
            try:
                text = repr(result)
            except RecursionError:
                text = None
            outputs.append(text if type(text) is str else None)
            keep.append([object(), object(), [], {{}}])
    except MemoryError:
        return "memory", None, "MemoryError"
    except _Overflow:
        return "output_too_large", None, "printed output exceeds the cap"
    except BaseException as err:
        if _state["banned"]:
            return "banned_import", None, "banned module: " + _state["banned"]
        return "runtime_error", None, _describe(err)
    if _state["banned"]:
        return "banned_import", None, "banned module: " + _state["banned"]
    if _state["printed"] > _MAX_STDOUT:
        return "output_too_large", None, "printed output exceeds the cap"
    if any(text is None for text in outputs):
        return "unrepresentable", None, "the return value has no usable repr"
    if any(len(text) > _MAX_OUTPUT for text in outputs):
        return "output_too_large", None, "repr longer than %d characters" % _MAX_OUTPUT
    if any(text != outputs[0] for text in outputs):
        return "nondeterministic", outputs[0], "repeated calls returned different values"
    return "ok", outputs[0], None


_verdict = _run()
_real_stdout.write("\n" + _MARK + json.dumps(list(_verdict)) + "\n")
_real_stdout.flush()
os._exit(0)  # nothing the program left behind (atexit handlers, threads) may print after the marker
"""


def build_program(prepared: PreparedJob, config: ExecutorConfig, mark: str) -> str:
    """The Python program sent to the server for one prepared job."""
    job = prepared.job
    return _WRAPPER.format(
        source=job.program,
        input=job.input,
        entry=job.entry,
        runs=max(1, int(job.determinism_runs or config.determinism_runs)),
        banned=list(config.banned_modules) if job.check_banned else [],
        max_output=int(config.max_output_chars),
        max_stdout=int(config.max_stdout_chars),
        mark=mark,
    )


def parse_response(response, mark: str, timeout: float) -> ExecResult:
    """Turn a ``RunCodeResponse`` into a verdict (the last marker line on stdout wins)."""
    run = response.run_result
    if run is None:
        return ExecResult(Verdict.CRASHED, error=f"the server ran nothing: {response.message}"[:300])
    duration = float(run.execution_time or 0.0)
    status = getattr(run.status, "value", run.status)
    if status == "TimeLimitExceeded":
        return ExecResult(Verdict.TIMEOUT, error=f"exceeded the {timeout} s time limit", duration=duration)
    stdout = run.stdout or ""
    at = stdout.rfind(mark)
    if at >= 0:
        line = stdout[at + len(mark) :].split("\n", 1)[0]
        try:
            verdict, output, error = json.loads(line)
            return ExecResult(Verdict(verdict), output=output, error=error, duration=duration)
        except (ValueError, TypeError):
            pass
    stderr = (run.stderr or "").strip()
    last = stderr.splitlines()[-1] if stderr else ""
    if "MemoryError" in stderr:
        return ExecResult(Verdict.MEMORY, error="MemoryError", duration=duration)
    code = run.return_code
    if code is not None and (code < 0 or code > 128):
        return ExecResult(Verdict.CRASHED, error=f"killed (return code {code}) {last}"[:300], duration=duration)
    return ExecResult(
        Verdict.RUNTIME_ERROR,
        error=(last or f"the process exited (status {code}) before returning a result")[:300],
        duration=duration,
    )


class SandboxFusionExecutor(Executor):
    """Runs jobs on a SandboxFusion server.

    Args:
        config: limits (``timeout`` becomes the request's ``run_timeout``).
        endpoint: server URL (default ``$SANDBOX_FUSION_ENDPOINT`` or ``http://localhost:8080``).
        concurrency: requests in flight at once.
        max_attempts: the client's retries per request.
        client_timeout: HTTP timeout per request (default ``timeout + 30`` s).
    """

    def __init__(
        self,
        config: ExecutorConfig | None = None,
        *,
        endpoint: str | None = None,
        concurrency: int = 32,
        max_attempts: int = 3,
        client_timeout: float | None = None,
    ):
        super().__init__(config)
        try:
            import sandbox_fusion
        except ImportError as err:
            raise ImportError(
                "The sandbox_fusion executor needs the SandboxFusion client: pip install 'azr-trl[sandbox]'"
            ) from err
        self._client = sandbox_fusion
        self.endpoint = (endpoint or os.environ.get("SANDBOX_FUSION_ENDPOINT") or "http://localhost:8080").rstrip("/")
        self.concurrency = max(1, int(concurrency))
        self.max_attempts = max(1, int(max_attempts))
        self.client_timeout = client_timeout if client_timeout is not None else self.config.timeout + 30.0

    def _run_prepared(self, jobs: list[PreparedJob], on_done: Callable[[int], object] | None) -> list[ExecResult]:
        if not jobs:
            return []
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._run_all(jobs, on_done))
        # Called from inside an event loop (e.g. through a sync wrapper): run ours in a separate thread.
        box: dict[str, object] = {}

        def target() -> None:
            try:
                box["results"] = asyncio.run(self._run_all(jobs, on_done))
            except BaseException as err:  # re-raised in the caller's thread
                box["error"] = err

        thread = threading.Thread(target=target, name="sandbox-fusion-batch")
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return box["results"]  # type: ignore[return-value]

    async def _run_all(self, jobs: list[PreparedJob], on_done: Callable[[int], object] | None) -> list[ExecResult]:
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(prepared: PreparedJob) -> ExecResult:
            async with semaphore:
                result = await self._run_one(prepared)
            if on_done is not None:
                on_done(1)
            return result

        return list(await asyncio.gather(*(one(prepared) for prepared in jobs)))

    async def _run_one(self, prepared: PreparedJob) -> ExecResult:
        mark = f"<<azr-result-{uuid.uuid4().hex}>>"
        request = self._client.RunCodeRequest(
            code=build_program(prepared, self.config, mark),
            language="python",
            run_timeout=float(self.config.timeout),
            compile_timeout=float(self.config.timeout),
        )
        try:
            response = await self._client.run_code_async(
                request, endpoint=self.endpoint, max_attempts=self.max_attempts, client_timeout=self.client_timeout
            )
        except Exception as err:
            raise ExecutorError(f"SandboxFusion request to {self.endpoint} failed: {err}") from err
        return parse_response(response, mark, self.config.timeout)
