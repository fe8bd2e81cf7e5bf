"""The sandbox template ("zygote") and the per-program child. Standard library only, and as little of it as possible.

``LocalExecutor`` starts a tiny bootstrap, ``python -S -s -P -B -c BOOTSTRAP``, and sends it one frame holding this
module and ``_policy.py`` already compiled, plus the configuration; the bootstrap runs this module as ``__main__`` with
``POLICY_CODE`` and ``CONFIG`` in its globals. Compiling the source here instead would leave over a megabyte of parser
garbage in the template, which every fork would copy. The environment holds only ``PYTHONHASHSEED`` (and UTF-8 locale
settings): hash randomisation is fixed when an interpreter starts, so the seed must be in place before the template
exists (``-I`` would imply ``-E`` and ignore it; the scrubbed environment gives the same isolation).

The template imports a few common modules, then reads job batches from its input pipe and ``os.fork()``s one child per
program, keeping up to ``max_in_flight`` children alive (forked in groups when several slots are free, see ``spawn``). A child locks itself down (own session, closed descriptors,
rlimits, audit hook, unprivileged uid, read-only empty working directory), runs ``f`` on fresh copies of the arguments
``runs`` times and writes one result to a pipe. The template enforces the wall-clock deadline with SIGKILL of the
child's whole process group and reports ``("s", id, pid)`` (started) and ``("r", id, status, output, error, seconds)``
events to the parent.

The parent has already compiled the program, checked it for banned modules and parsed the arguments, so none of that
happens here; both pipes carry frames of a 4-byte big-endian length followed by ``marshal`` data, written only by
trusted code (the children write to their own pipes, never to these). Keeping this process small matters: the cost of
a fork is mostly page faults, and a child pays for every page it touches.
"""

import _signal
import gc
import marshal
import os
import resource
import select
import sys
import time


# The audit-hook policy arrives compiled (``POLICY_CODE``, see the module docstring); it runs in its own namespace,
# since putting its directory on ``sys.path`` would let programs import our modules (``types`` would shadow the stdlib).
_policy = {"__name__": "_azr_sandbox_policy"}
exec(globals().pop("POLICY_CODE"), _policy)
ARM_EVENT, REPORT_EVENT = _policy["ARM_EVENT"], _policy["REPORT_EVENT"]
banned_match, make_audit_hook = _policy["banned_match"], _policy["make_audit_hook"]


# What a child may report (the verdicts the parent accepts from the sandbox).
_STATUSES = frozenset(
    ("ok", "no_entry_function", "banned_import", "runtime_error", "memory", "output_too_large", "nondeterministic",
     "unrepresentable", "crashed")
)  # fmt: skip

_SIGNAL_NAMES = {
    getattr(_signal, name): name for name in ("SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT", "SIGKILL", "SIGTERM")
}


class _NoEntry(Exception):
    """The program ran but defines no callable entry function."""


class _OutputLimit(BaseException):
    """Raised by the captured stdout/stderr when a program prints more than allowed (BaseException: hard to swallow)."""


class _CappedWriter:
    """Captured stdout/stderr: counts characters and stops the program past the cap (nothing is kept)."""

    def __init__(self, cap):
        self._cap, self._count, self.overflow = cap, 0, False

    def write(self, text):
        self._count += len(text)
        if self._count > self._cap:
            self.overflow = True
            raise _OutputLimit("printed output exceeds the cap")
        return len(text)

    def flush(self):
        pass


def _describe(err):
    """``'ValueError: message'`` for an exception, guarded against a hostile ``__str__``."""
    try:
        name = type.__dict__["__name__"].__get__(type(err))
    except BaseException:
        name = "Exception"
    try:
        text = str(err)
    except BaseException:
        text = ""
    text = text if type(text) is str else ""
    return (f"{name}: {text}" if text else name)[:300]


def run_child(
    job,
    code,
    wfd,
    tpl,
    _write=os.write,
    _exit=os._exit,
    _len=len,
    _repr=repr,
    _type=type,
    _str=str,
    _audit=sys.audit,
    _setrecursionlimit=sys.setrecursionlimit,
    _setsid=os.setsid,
    _dup2=os.dup2,
    _closerange=os.closerange,
    _loads=marshal.loads,
    _setrlimit=resource.setrlimit,
    _addaudithook=sys.addaudithook,
    _setgroups=os.setgroups,
    _setgid=os.setgid,
    _setuid=os.setuid,
    _getuid=os.getuid,
    _geteuid=os.geteuid,
):
    """Everything a forked child does; never returns (``os._exit``).

    One straight line ending in a single write: every object the child touches is a page the kernel must copy (a
    fork's real cost), so the template has already done what all children share (working directory, descriptors 0-2 on
    /dev/null, banned modules out of ``sys.modules``) and this function creates no closures or comprehensions.
    Everything used after the program ran is bound to locals first: the program can patch modules, not this frame.
    """
    cfg = tpl.cfg
    _, _, args_blob, entry, check_banned, runs, imports = job
    result = None
    try:
        _setsid()
        if wfd != 3:
            _dup2(wfd, 3)
        _closerange(4, 1 << 16)
        copies = []
        while _len(copies) < runs:
            copies.append(_loads(args_blob))  # fresh argument objects for every call (parent's data)
        for which, pair in tpl.limits:
            _setrlimit(which, pair)
        _addaudithook(tpl.hooks[check_banned])
        tpl.hooks = None  # this child's copy: the interpreter's hook list is now the only reference
        sys.stdout = sys.stderr = tpl.writer
        sys.stdin = None
        # Statically imported modules load now, as the template's user: the sandbox user may not be able to read the
        # standard library. The audit hook already refuses anything dangerous such an import might do.
        modules = sys.modules
        pending = []
        for name in imports:
            if name in modules:
                continue
            head, _, tail = name.rpartition(".")
            if head in modules and hasattr(modules[head], tail):
                continue  # `from a import b` of an attribute: a failed submodule search costs ~100 page faults
            pending.append(name)
        if pending or not check_banned:
            # Back in for the set-up imports (the standard library itself imports os.path) and for unchecked programs;
            # a checked program loses them again below.
            modules.update(tpl.banned_loaded)
        for name in pending:
            try:  # noqa: SIM105 (contextlib is not loaded in the template, and every module costs each fork)
                __import__(name)
            except BaseException:
                pass
        if check_banned and pending:
            # Banned modules must be imported again by the program, so that the hook sees it.
            for name in tpl.banned_loaded:
                modules.pop(name, None)
            if _len(modules) != tpl.module_count:  # the set-up imports brought in more: drop the banned among them
                for name in list(modules):
                    if banned_match(name, tpl.banned):
                        del modules[name]
        if tpl.drop_privileges:
            _setgroups(())
            _setgid(cfg["gid"])
            _setuid(cfg["uid"])
            if _getuid() == 0 or _geteuid() == 0:
                raise OSError("still root after setuid")
        sys.pycache_prefix = "/nonexistent"  # later imports compile from source instead of un-marshalling byte code
    except BaseException as err:
        result = ("crashed", "", f"sandbox set-up failed: {_describe(err)}")

    if result is None:
        # Not "__main__": like the reference's exec, a program's `if __name__ == "__main__":` block does not run.
        keep, outputs, namespace = [], [], {"__name__": "__program__", "__builtins__": __builtins__}
        _audit(ARM_EVENT)
        if tpl.recursion_limit:
            _setrecursionlimit(tpl.recursion_limit)
        try:
            exec(code, namespace)
            fn = namespace.get(entry)
            if not callable(fn):
                raise _NoEntry
            for args in copies:
                value = fn(*args)
                keep.append(value)
                try:
                    text = _repr(value)
                except RecursionError:
                    text = None
                outputs.append(text if _type(text) is _str else None)
                # Occupy the small blocks just freed so that a later call cannot get back the same ids for its objects.
                keep.append([object(), object(), object(), object(), [], [], {}, {}, bytes(8), bytes(24), bytes(40)])
        except _NoEntry:
            result = ("no_entry_function", "", f"the program defines no function {entry!r}")
        except MemoryError:
            result = ("memory", "", "MemoryError")
        except _OutputLimit:
            result = ("output_too_large", "", "printed output exceeds the cap")
        except BaseException as err:
            result = ("runtime_error", "", _describe(err))
        _setrecursionlimit(tpl.restore_limit)  # whatever the program set: the verdict below must be able to run
        findings = []
        _audit(REPORT_EVENT, findings)
        banned_hit, violation = findings if _len(findings) == 2 else ("?", "?")
        # The most telling verdict first: what the program tried beats how it ended.
        if banned_hit is not None:
            result = ("banned_import", "", f"banned module: {banned_hit}")
        elif violation is not None:
            result = ("runtime_error", "", f"SandboxViolation: {violation}")
        elif tpl.writer.overflow:
            result = ("output_too_large", "", "printed output exceeds the cap")
        elif result is None:
            first = outputs[0]
            for text in outputs:
                if text is None:
                    result = ("unrepresentable", "", "the return value has no usable repr")
                    break
                if _len(text) > cfg["max_output_chars"]:
                    result = ("output_too_large", "", f"repr longer than {cfg['max_output_chars']} characters")
                    break
            if result is None:
                for text in outputs:
                    if text != first:
                        # The parent decides between "unrepresentable" (<object at 0x...>) and "nondeterministic".
                        result = ("nondeterministic", first, "repeated calls returned different values")
                        break
            if result is None:
                result = ("ok", first, "")

    status, output, error = result
    payload = (status + "\0" + error.replace("\0", " ")[:1000] + "\0" + output).encode("utf-8", "backslashreplace")
    view = memoryview(payload)
    while view:
        view = view[_write(3, view) :]
    _exit(0)


class Template:
    """The template's event loop: jobs in from stdin, children out, events back on stdout."""

    def __init__(self, cfg):
        self.cfg = cfg
        # Children inherit descriptors 0-2 on /dev/null and this working directory, so they need not set them up: the
        # pipes to the parent move to higher numbers (which every child closes) and stderr keeps a copy for tracebacks.
        devnull = os.open("/dev/null", os.O_RDWR)
        while devnull <= 2:  # the parent runs with stderr closed: fill the gap, so that the copies land above 2
            devnull = os.open("/dev/null", os.O_RDWR)
        self.in_fd, self.out_fd, err_fd = os.dup(0), os.dup(1), os.dup(2)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
        # Kept on the instance too: a child replacing sys.stderr must not free (and so flush and close) the object.
        self.stderr = sys.stderr = open(err_fd, "w", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
        os.chdir(cfg["workdir"])
        self.banned = tuple(tuple(entry.split(".")) for entry in cfg["banned"])
        read_roots = [os.path.normpath(os.path.join("/", p)) for p in sys.path if p]
        # Built once here (the template never installs them) and inherited by every child.
        self.hooks = {flag: make_audit_hook(read_roots, self.banned if flag else ()) for flag in (True, False)}
        for hook in self.hooks.values():
            # When a child drops ``self.hooks``, the installed hook keeps the dict alive: reachable from nowhere a
            # program can see, and nothing is deallocated (freeing the other hook's closure would touch many pages).
            hook.keepalive = self.hooks
        self.writer = _CappedWriter(cfg["max_stdout_chars"])
        # Decided once here rather than in every child: whether children must leave root, and the recursion limit to
        # set before a program (0: the template's own, already in place) and after it (enough for the verdict).
        self.drop_privileges = bool(cfg["drop_privileges"]) and os.geteuid() == 0
        limit = cfg["recursion_limit"]
        self.recursion_limit = 0 if limit == sys.getrecursionlimit() else limit
        self.restore_limit = max(limit, 1000)
        self.limits = []
        for name, value in (
            ("RLIMIT_AS", cfg["memory_bytes"]),
            ("RLIMIT_CPU", cfg["cpu_seconds"]),
            ("RLIMIT_NPROC", cfg["max_processes"]),
            ("RLIMIT_FSIZE", 0),
            ("RLIMIT_NOFILE", 16),
            ("RLIMIT_CORE", 0),
        ):
            if value is not None:
                self.limits.append((getattr(resource, name), (value, value + 1 if name == "RLIMIT_CPU" else value)))
        self.workdir_mtime = os.stat(cfg["workdir"]).st_mtime_ns
        self.programs = {}  # program number -> [code object, jobs not yet started]
        self.queue = []
        self.queue_pos = 0
        # pidfd -> [job_id, pid, result_fd, deadline, killed_for, start]; insertion order is deadline order.
        self.children = {}
        self.events = []
        self.inbuf = bytearray()
        self.max_result_bytes = 4 * cfg["max_output_chars"] + 8192
        self.pipe_size = 0
        if self.max_result_bytes > 65536:  # the child writes its result once and exits: the pipe must hold all of it
            import fcntl

            self.pipe_size = min(self.max_result_bytes, 1 << 20)
            self.set_pipe_size = lambda fd: fcntl.fcntl(fd, 1031, self.pipe_size)  # F_SETPIPE_SZ
        self.epoll = select.epoll()
        os.set_blocking(self.in_fd, False)
        self.epoll.register(self.in_fd, select.EPOLLIN)
        self.module_count = 0
        self.banned_loaded = {}

    def serve(self):
        """Until stdin closes: start queued jobs, wait for exits (pidfds) or input, enforce deadlines, report."""
        open_input = True
        # Each child holds two descriptors here (its pidfd and result pipe) and a third while its group starts.
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        cap = self.cfg["max_in_flight"] if soft < 0 else max(1, min(self.cfg["max_in_flight"], (soft - 32) // 3))
        children, poll, now = self.children, self.epoll.poll, time.monotonic
        while open_input or self.queue_pos < len(self.queue) or children:
            count = min(cap - len(children), len(self.queue) - self.queue_pos)
            if count > 0:
                self.spawn(self.queue[self.queue_pos : self.queue_pos + count])
                self.queue_pos += count
            if self.queue_pos and self.queue_pos == len(self.queue):
                self.queue, self.queue_pos = [], 0
            timeout = -1
            for child in children.values():  # the oldest child not yet killed has the next deadline
                if child[4] is None:
                    timeout = max(0.0, child[3] - now())
                    break
            for fd, _ in poll(timeout):
                if fd == self.in_fd:
                    open_input = self.read_input()
                    if not open_input:
                        self.shutdown()
                        return
                else:
                    self.reap(fd)
            current = now()
            for child in children.values():
                if child[3] > current:
                    break
                if child[4] is None:
                    child[4] = "timeout"
                    self.kill(child[1])
            self.flush()

    def read_input(self):
        try:
            data = os.read(self.in_fd, 1 << 16)
        except BlockingIOError:
            return True
        if not data:
            return False
        self.inbuf += data
        while len(self.inbuf) >= 4:
            size = int.from_bytes(self.inbuf[:4], "big")
            if len(self.inbuf) < 4 + size:
                break
            programs, jobs = marshal.loads(bytes(self.inbuf[4 : 4 + size]))
            del self.inbuf[: 4 + size]
            for number, blob in programs.items():
                self.programs[number] = [marshal.loads(blob), 0]
            for job in jobs:
                self.programs[job[1]][1] += 1  # jobs still to start: the code is dropped after the last one
            self.queue.extend(jobs)
        return True

    def spawn(self, jobs):
        """Fork one child per job, back to back. Each fork makes every page of this process shared again, and the
        first write to a shared page afterwards copies it: so nothing happens between two forks but the fork itself
        and storing its pid, and the bookkeeping of the whole group (pipes before, pidfds and records after) pays
        for its copies once. With many programs in flight, several have exited by the time the template wakes, so
        groups form by themselves."""
        prepared = []
        for job in jobs:
            entry = self.programs[job[1]]
            entry[1] -= 1
            if not entry[1]:
                del self.programs[job[1]]  # the last job of this program: the code object goes with it
            read_fd, write_fd = os.pipe()
            if self.pipe_size:
                self.set_pipe_size(write_fd)
            prepared.append((job, entry[0], read_fd, write_fd))
        gc.freeze()  # O(1): the template's newer objects join the permanent generation, so no child's GC walks them
        pids, failure = [], None
        fork, append = os.fork, pids.append
        try:
            for item in prepared:  # not unpacked: every object touched here is a page copied again after each fork
                pid = fork()
                if pid == 0:
                    try:  # the child closes every other descriptor, this group's pipe ends included, before the program
                        run_child(item[0], item[1], item[3], self)
                    finally:
                        os._exit(70)
                append(pid)
        except OSError as err:  # no process left for the rest of the group (a process or memory limit)
            failure = f"the sandbox could not start the program: {err}"
        start = time.monotonic()  # every child of the group gets at least its full time
        deadline = start + self.cfg["timeout"]
        for (job, _, read_fd, write_fd), pid in zip(prepared, pids, strict=False):
            os.close(write_fd)
            pidfd = os.pidfd_open(pid)  # readable once the child has exited: no SIGCHLD handling needed
            self.epoll.register(pidfd, select.EPOLLIN)
            self.children[pidfd] = [job[0], pid, read_fd, deadline, None, start]
            self.events.append(("s", job[0], pid))
        for job, _, read_fd, write_fd in prepared[len(pids) :]:  # each costs its own verdict, never the template
            os.close(read_fd)
            os.close(write_fd)
            self.events.append(("r", job[0], "crashed", None, failure, 0.0))

    def kill(self, pid):
        try:  # noqa: SIM105
            os.killpg(pid, 9)
        except (ProcessLookupError, PermissionError):
            pass

    def reap(self, pidfd):
        child = self.children.pop(pidfd, None)
        if child is None:
            return
        self.epoll.unregister(pidfd)
        os.close(pidfd)
        pid, status = os.waitpid(child[1], 0)  # it has exited: this does not block
        self.kill(pid)  # the pid stays reserved while its group has members, so this only hits leftovers
        fd, raw = child[2], b""
        os.set_blocking(fd, False)
        try:
            while len(raw) <= self.max_result_bytes:
                data = os.read(fd, 65536)
                if not data:
                    break
                raw += data
        except BlockingIOError:
            pass
        os.close(fd)
        if len(raw) > self.max_result_bytes and child[4] is None:
            child[4] = "oversized"
        child[2] = raw
        self.finish(child, status)

    def finish(self, child, status):
        job_id, _, raw, _, killed_for, start = child
        duration = round(time.monotonic() - start, 6)
        self.check_workdir()
        result = None
        if killed_for == "timeout":
            result = ("timeout", None, f"exceeded the {self.cfg['timeout']} s time limit")
        elif killed_for == "oversized":
            result = ("output_too_large", None, "the result message exceeds the cap")
        elif os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig == _signal.SIGXCPU:
                result = ("timeout", None, "exceeded the CPU-time limit")
            else:
                result = ("crashed", None, f"killed by signal {_SIGNAL_NAMES.get(sig, sig)}")
        elif raw and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            parts = raw.decode("utf-8", "replace").split("\0", 2)
            if len(parts) == 3 and parts[0] in _STATUSES:
                result = (parts[0], parts[2] or None, parts[1] or None)
            else:  # a program that wrote to its result pipe itself: its own verdict, never the batch's
                result = ("runtime_error", None, "the program wrote a malformed result")
        if result is None:
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
            result = ("runtime_error", None, f"the process exited (status {code}) before returning a result")
        self.events.append(("r", job_id, result[0], result[1], result[2], duration))

    def check_workdir(self):
        """The shared working directory is read-only to programs; if anything ever changed it, empty it again."""
        workdir = self.cfg["workdir"]
        if os.stat(workdir).st_mtime_ns != self.workdir_mtime:
            for entry in os.listdir(workdir):
                _remove_tree(f"{workdir}/{entry}")
            self.workdir_mtime = os.stat(workdir).st_mtime_ns

    def flush(self):
        if not self.events:
            return
        payload = marshal.dumps(self.events)
        self.events = []
        data = memoryview(len(payload).to_bytes(4, "big") + payload)
        while data:
            data = data[os.write(self.out_fd, data) :]

    def shutdown(self):
        for child in self.children.values():
            self.kill(child[1])
        for child in self.children.values():
            try:  # noqa: SIM105
                os.waitpid(child[1], 0)
            except ChildProcessError:
                pass
        self.children.clear()


def _remove_tree(path):
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            for entry in os.listdir(path):
                _remove_tree(f"{path}/{entry}")
            os.rmdir(path)
        else:
            os.unlink(path)
    except OSError:
        pass


def main():
    cfg = globals().pop("CONFIG")
    os.environ.clear()  # children inherit an empty environment (the parent passed only the hash seed and locale)
    try:  # children inherit it: if memory runs out, the kernel kills a program (the largest) before the trainer
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
        try:
            os.write(fd, b"1000")
        finally:
            os.close(fd)
    except OSError:
        pass
    for name in cfg["preload"]:
        try:  # noqa: SIM105
            __import__(name)
        except ImportError:
            pass
    template = Template(cfg)
    # Banned modules the template loaded leave sys.modules (the template keeps them): a program must import them
    # again, and the audit hook sees that. Done once here rather than in every child.
    template.banned_loaded = {
        name: sys.modules.pop(name) for name in list(sys.modules) if banned_match(name, template.banned)
    }
    template.module_count = len(sys.modules)
    gc.collect()
    gc.freeze()  # children never walk (and so never copy) the template's objects
    hello = marshal.dumps([("ready", os.getpid(), os.readlink("/proc/self/ns/net"), sys.hexversion)])
    os.write(template.out_fd, len(hello).to_bytes(4, "big") + hello)
    template.serve()


if __name__ == "__main__":
    main()
