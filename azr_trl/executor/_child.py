"""The per-program child: what every process the sandbox template forks runs, from lock-down to its one result.

Standard library only. The template runs this module from byte code in a namespace of its own, with the compiled
audit-hook policy as ``POLICY_CODE``; the child installs the hook the template built from that policy. A child locks
itself down (own session, closed descriptors, rlimits, audit hook, unprivileged uid, read-only empty working
directory), runs ``f`` on fresh copies of the arguments ``runs`` times and writes one result to its pipe.
"""

import marshal
import os
import resource
import sys


# The policy runs in its own namespace; the template reads ``banned_match`` and ``make_audit_hook`` from here.
_policy = {"__name__": "_azr_sandbox_policy"}
exec(globals().pop("POLICY_CODE"), _policy)
ARM_EVENT, REPORT_EVENT = _policy["ARM_EVENT"], _policy["REPORT_EVENT"]
banned_match, make_audit_hook = _policy["banned_match"], _policy["make_audit_hook"]


class _NoEntry(Exception):
    """The program ran but defines no callable entry function."""


class _OutputLimit(BaseException):
    """Raised by the captured stdout/stderr when a program prints more than allowed (BaseException: hard to swallow)."""


class CappedWriter:
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
