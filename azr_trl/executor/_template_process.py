"""The parent's handle on the sandbox template process: how it is started, and the framed pipes to it.

The template (``_sandbox.py``) runs from byte code compiled here: the interpreter is started with a tiny bootstrap
(``-c``) that reads one frame holding the compiled template, its per-program child (``_child.py``), the audit-hook
policy (``_policy.py``) and the configuration. Both pipes carry frames of a 4-byte big-endian length followed by
``marshal`` data.
"""

from __future__ import annotations

import contextlib
import functools
import marshal
import os
import selectors
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path


SANDBOX_SCRIPT = Path(__file__).with_name("_sandbox.py")
CHILD_SCRIPT = Path(__file__).with_name("_child.py")
POLICY_SCRIPT = Path(__file__).with_name("_policy.py")
# What the sandbox interpreter runs (``-c``): read one frame, check the interpreter is this one (code objects travel as
# marshal data), then run the compiled template as __main__. Plain tuples, bytes and dicts read the same in any Python 3.
BOOTSTRAP = """\
import marshal, os, sys
def read(n):
    data = b""
    while len(data) < n:
        chunk = os.read(0, n - len(data))
        if not chunk:
            raise SystemExit("the parent closed the pipe before sending the sandbox")
        data += chunk
    return data
version, sandbox, child, policy, config = marshal.loads(read(int.from_bytes(read(4), "big")))
if version != sys.hexversion:
    hello = marshal.dumps([("ready", os.getpid(), "", sys.hexversion)])
    os.write(1, len(hello).to_bytes(4, "big") + hello)
    raise SystemExit(0)
namespace = {"__name__": "__main__", "__builtins__": __builtins__, "CONFIG": config}
namespace["CHILD_CODE"], namespace["POLICY_CODE"] = marshal.loads(child), marshal.loads(policy)
sandbox = marshal.loads(sandbox)
del read, version, child, policy, config
exec(sandbox, namespace)
"""
_FRAME = struct.Struct(">I")
STARTUP_TIMEOUT = 60.0


class TemplateDied(Exception):
    """The template exited, closed its pipes or stopped answering."""


class TemplateProcess:
    """One running template process and its two pipes."""

    def __init__(self, cmd: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, start_new_session=True, close_fds=True
        )
        self.in_fd, self.out_fd = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        os.set_blocking(self.in_fd, False)
        os.set_blocking(self.out_fd, False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.out_fd, selectors.EVENT_READ)
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.pid = self.proc.pid
        self.netns: str | None = None

    def send(self, message: object) -> None:
        """Queue a frame and write what the pipe takes now (the rest goes out in ``poll``): the template can start
        the first chunk's programs while the parent prepares the next."""
        payload = marshal.dumps(message)
        self.outbox += _FRAME.pack(len(payload)) + payload
        if self.in_fd in self.selector.get_map():
            return
        try:
            del self.outbox[: os.write(self.in_fd, self.outbox)]
        except BlockingIOError:
            pass
        except OSError as err:
            raise TemplateDied(f"cannot write to the sandbox template: {err}") from None
        if self.outbox:
            self.selector.register(self.in_fd, selectors.EVENT_WRITE)

    def poll(self, timeout: float | None) -> list[list]:
        """Pump both pipes for up to ``timeout`` seconds; return the events received (possibly none)."""
        events: list[list] = []
        for key, _ in self.selector.select(timeout):
            if key.fd == self.in_fd:
                try:
                    written = os.write(self.in_fd, self.outbox)
                except BlockingIOError:
                    continue
                except (BrokenPipeError, OSError) as err:
                    raise TemplateDied(f"cannot write to the sandbox template: {err}") from None
                del self.outbox[:written]
                if not self.outbox:
                    self.selector.unregister(self.in_fd)
            else:
                try:
                    data = os.read(self.out_fd, 1 << 20)
                except BlockingIOError:
                    continue
                if not data:
                    raise TemplateDied("the sandbox template exited")
                self.inbox += data
        while len(self.inbox) >= 4:
            (size,) = _FRAME.unpack_from(self.inbox)
            if len(self.inbox) < 4 + size:
                break
            events.extend(marshal.loads(bytes(self.inbox[4 : 4 + size])))  # written by our own template
            del self.inbox[: 4 + size]
        return events

    def stop(self, wait: float = 5.0) -> None:
        try:
            self.selector.close()
            self.proc.stdin.close()  # EOF: the template kills its children and exits
        except OSError:
            pass
        try:
            self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            self.kill()
        self.proc.stdout.close()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


@functools.cache
def sandbox_code() -> tuple[bytes, bytes, bytes]:
    """The template, its per-program child and the audit-hook policy, compiled here once and sent as marshal data."""
    return tuple(
        marshal.dumps(compile(path.read_text(encoding="utf-8"), str(path), "exec", dont_inherit=True))
        for path in (SANDBOX_SCRIPT, CHILD_SCRIPT, POLICY_SCRIPT)
    )


def kill_orphan_group(pid: int) -> None:
    """SIGKILL the process group of a program whose template died, if that group still is the program's."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        stat = None
    if stat is not None:
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) != pid:  # pgrp: the pid was reused by an unrelated process
            return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def start_template(python: str, prefix: list[str], env: dict[str, str], config: dict) -> tuple[TemplateProcess, list]:
    """Start a template with ``python`` (after the command ``prefix``, e.g. ``unshare --net --``), send it the
    compiled template and ``config``, and wait for its ``("ready", pid, netns, hexversion)`` event.

    Raises ``TemplateDied`` when it does not come up; the caller checks the interpreter version in the event.
    """
    template = TemplateProcess([*prefix, python, "-S", "-s", "-P", "-B", "-c", BOOTSTRAP], env)
    try:
        template.send((sys.hexversion, *sandbox_code(), config))
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            for event in template.poll(1.0):
                if event[0] == "ready":
                    return template, event
            if template.proc.poll() is not None:
                raise TemplateDied(f"it exited with status {template.proc.returncode}")
        raise TemplateDied("no answer within the start-up timeout")
    except TemplateDied:
        template.kill()
        raise
