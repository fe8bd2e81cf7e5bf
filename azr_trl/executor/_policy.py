"""The sandbox's audit-hook policy. Standard library only (``os``); the template loads this file by path.

What a program may do inside the sandbox beyond what the OS-level limits (unprivileged user, rlimits, network
namespace, closed descriptors, read-only working directory) already stop: no processes, no signals to others, no
file-system changes, no writes, reads only inside the Python installation, no sockets, no native code (ctypes),
no heap walking or tracing, no crafted byte code once the program runs, and no banned module, however it is imported.
"""

import os


# Modules a child may never import, whatever the banned list says: they reach below the audit hook.
FORBIDDEN_MODULES = frozenset(
    ("ctypes", "_ctypes", "_posixsubprocess", "site", "_testcapi", "_testinternalcapi", "_testbuffer",
     "_xxsubinterpreters", "_xxinterpchannels", "_xxtestfuzz", "_tracemalloc", "tracemalloc")
)  # fmt: skip

# Audit events refused at any time: processes, signals to others, file-system changes, network, native code, heap
# walking and tracing (which would expose the sandbox's own frames and state), rlimit changes.
DENIED_EVENTS = frozenset(
    ("os.system", "os.fork", "os.forkpty", "os.kill", "os.killpg", "subprocess.Popen", "pty.spawn", "os.putenv",
     "os.unsetenv", "os.chdir", "os.chmod", "os.chown", "os.chflags", "os.lchflags", "os.link", "os.symlink",
     "os.mkdir", "os.remove", "os.rename", "os.rmdir", "os.truncate", "os.utime", "os.setxattr", "os.removexattr",
     "os.getxattr", "os.listxattr", "os.lockf", "os.walk", "os.fwalk", "glob.glob", "glob.glob/2",
     "pathlib.Path.glob", "pathlib.Path.rglob", "resource.setrlimit", "resource.prlimit", "gc.get_objects",
     "gc.get_referrers", "gc.get_referents", "sys.addaudithook", "sys.settrace", "sys.setprofile",
     "sys._current_frames", "sys._current_exceptions", "mmap.__new__", "builtins.input", "webbrowser.open",
     "sqlite3.connect", "pdb.Pdb", "os.startfile", "cpython.run_command", "cpython.run_file")
)  # fmt: skip
DENIED_PREFIXES = (
    "socket.", "ctypes.", "os.exec", "os.spawn", "os.posix_spawn", "shutil.", "tempfile.", "syslog.", "ftplib.",
    "smtplib.", "poplib.", "imaplib.", "nntplib.", "telnetlib.", "urllib.", "http.", "sqlite3.", "fcntl.", "_winapi.",
)  # fmt: skip
# Refused once the program runs (set-up imports may read byte code): crafted byte code is the usual way around an
# audit hook.
ARMED_DENIED_EVENTS = frozenset(("marshal.load", "marshal.loads", "code.__new__"))
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def banned_match(name, banned):
    """Whether a dotted module name hits a banned entry (``split`` entries: a single word matches any component, a
    dotted entry a run of consecutive components; same rule as ``checks.match_banned``)."""
    parts = name.split(".")
    for entry in banned:
        width = len(entry)
        if width == 1:
            if entry[0] in parts:
                return True
        elif any(tuple(parts[i : i + width]) == entry for i in range(len(parts) - width + 1)):
            return True
    return False


ARM_EVENT, REPORT_EVENT = "azr.sandbox/arm", "azr.sandbox/report"


def make_audit_hook(read_roots, banned):
    """An audit hook enforcing the sandbox policy.

    Its state (armed, first banned import, first violation) lives only in this closure and is reached through two
    private audit events: ``sys.audit(ARM_EVENT)`` arms it (one way), ``sys.audit(REPORT_EVENT, box)`` copies the
    findings into the plain list ``box``. The child drops every other reference to the hook before the program runs.

    A program can still see the hook's frame: a refusal raises from inside it, and the traceback holds that frame. So
    the hook is one self-contained function whose frame offers nothing to tamper with: its state is rebound
    (``nonlocal``) to immutable values, so editing ``f_locals`` changes nothing; it calls no Python function (whose
    ``__code__`` or closure cells could be swapped), only C built-ins bound here; and it reads no global, so replacing
    module globals or builtins changes nothing either. Arguments of any type but plain str/bytes/int/None/list are
    refused, so no program-defined method runs inside it.
    """
    armed, banned_hit, violation = False, None, None
    _type, _str, _bytes, _int, _list, _tuple, _len, _range = type, str, bytes, int, list, tuple, len, range
    _getcwd, _decode = os.getcwd, bytes.decode
    _denied, _prefixes, _armed_denied = DENIED_EVENTS, DENIED_PREFIXES, ARMED_DENIED_EVENTS
    _forbidden, _write_flags, _arm, _report = FORBIDDEN_MODULES, _WRITE_FLAGS, ARM_EVENT, REPORT_EVENT
    _PermissionError, _ImportError = PermissionError, ImportError
    roots = tuple(read_roots)
    banned = tuple(tuple(entry) for entry in banned)  # tuples of the dotted parts

    def hook(event, args):
        nonlocal armed, banned_hit, violation
        refusal = path = None
        if _type(event) is not _str:
            refusal = "an unknown audit event"
        elif event == _arm:
            armed = True
            return
        elif event == _report:
            if args and _type(args[0]) is _list:
                args[0][:] = (banned_hit, violation)
            return
        elif event in _denied or event.startswith(_prefixes):
            refusal = event
        elif event == "open":
            path, mode, flags = (args + (None, None, None))[:3]
            writes = _type(mode) is _str and ("w" in mode or "a" in mode or "x" in mode or "+" in mode)
            if writes or (_type(flags) is _int and flags & _write_flags):
                refusal = "opening files for writing"
            elif _type(mode) is not _str and mode is not None:
                refusal = "reading files outside the Python installation"
            what = "reading files outside the Python installation"
        elif event == "os.listdir" or event == "os.scandir":
            path = args[0] if args else 0  # 0: no path given, refused below
            what = "listing directories outside the Python installation"
        elif event == "import":
            name = args[0] if args else None
            if _type(name) is not _str:
                refusal = "importing a module by a non-string name"
            elif name.split(".")[0] in _forbidden:
                refusal = f"importing {name}"
            elif armed and banned:
                parts = name.split(".")
                for entry in banned:  # same rule as banned_match: a word anywhere, a dotted entry as a run
                    width = _len(entry)
                    hit = False
                    for i in _range(_len(parts) - width + 1):
                        if _tuple(parts[i : i + width]) == entry:
                            hit = True
                            break
                    if hit:
                        if banned_hit is None:
                            banned_hit = name
                        raise _ImportError(f"banned module: {name}")
        elif armed and event in _armed_denied:
            refusal = event
        else:
            return
        if refusal is None and path is not None:
            # The path must lie inside the Python installation (site-packages excluded), after resolving . and ..
            # with str operations only.
            if _type(path) is _bytes:
                path = _decode(path, "utf-8", "surrogateescape")
            inside = False
            if _type(path) is _str:
                if path[:1] != "/":
                    path = _getcwd() + "/" + path
                parts = []
                for part in path.split("/"):
                    if part == "" or part == ".":
                        continue
                    if part == "..":
                        if parts:
                            parts.pop()
                    else:
                        parts.append(part)
                path = "/" + "/".join(parts)
                for root in roots:
                    if path == root or path.startswith(root + "/"):
                        inside = "/site-packages" not in path and "/dist-packages" not in path
                        break
            if not inside:
                refusal = what
        if refusal is None:
            return
        if violation is None:
            violation = refusal
        raise _PermissionError(f"sandbox: {refusal} is not allowed")

    return hook
