"""The sandbox template ("zygote"): the process that forks one child per program. Standard library only, and as
little of it as possible.

``LocalExecutor`` starts a tiny bootstrap, ``python -S -s -P -B -c BOOTSTRAP``, and sends it one frame holding this
module, ``_child.py`` and ``_policy.py`` already compiled, plus the configuration; the bootstrap runs this module as
``__main__`` with ``CHILD_CODE``, ``POLICY_CODE`` and ``CONFIG`` in its globals. Compiling the source here instead
would leave over a megabyte of parser garbage in the template, which every fork would copy. The environment holds only
``PYTHONHASHSEED`` (and UTF-8 locale settings): hash randomisation is fixed when an interpreter starts, so the seed
must be in place before the template exists (``-I`` would imply ``-E`` and ignore it; the scrubbed environment gives
the same isolation).

The template imports a few common modules, then reads job batches from its input pipe and ``os.fork()``s one child per
program, keeping up to ``max_in_flight`` children alive (forked in groups when several slots are free, see ``spawn``).
Each child runs ``_child.run_child``: it locks itself down, runs the program and writes one result to a pipe. The
template enforces the wall-clock deadline with SIGKILL of the child's whole process group and reports
``("s", id, pid)`` (started) and ``("r", id, status, output, error, seconds)`` events to the parent.

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


# The per-program child (``_child.py``) and the audit-hook policy arrive compiled (``CHILD_CODE``, ``POLICY_CODE``, see
# the module docstring); each runs in its own namespace, since putting their directory on ``sys.path`` would let
# programs import our modules (``types`` would shadow the stdlib). The child's module loads the policy.
_child = {"__name__": "_azr_sandbox_child", "__builtins__": __builtins__, "POLICY_CODE": globals().pop("POLICY_CODE")}
exec(globals().pop("CHILD_CODE"), _child)
run_child, CappedWriter = _child["run_child"], _child["CappedWriter"]
banned_match, make_audit_hook = _child["banned_match"], _child["make_audit_hook"]


# What a child may report (the verdicts the parent accepts from the sandbox).
_STATUSES = frozenset(
    ("ok", "no_entry_function", "banned_import", "runtime_error", "memory", "output_too_large", "nondeterministic",
     "unrepresentable", "crashed")
)  # fmt: skip

_SIGNAL_NAMES = {
    getattr(_signal, name): name for name in ("SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT", "SIGKILL", "SIGTERM")
}


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
        self.writer = CappedWriter(cfg["max_stdout_chars"])
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
