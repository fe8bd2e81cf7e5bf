"""Parent-side checks of the executor: literal parsing, the banned-module scan, value comparison. No process runs."""

from __future__ import annotations

import ast

import pytest

from azr_trl.executor import REFERENCE_BANNED_MODULES, find_banned, literal_equal, parse_args, parse_literal
from azr_trl.executor.checks import check_program, code_imports, match_banned
from azr_trl.executor.values import truncate_output, values_equal


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        ("'ab', [1, 2]", ("ab", [1, 2])),
        ("", ()),
        ("1,", (1,)),
        ("{'a': (1, 2.5)}, {3}, None, True, b'x', -4, 1+2j", ({"a": (1, 2.5)}, {3}, None, True, b"x", -4, 1 + 2j)),
        ("[\n 1,\n 2\n]  # comment", ([1, 2],)),
    ],
)
def test_parse_args_literals(src, expected):
    assert parse_args(src) == expected


@pytest.mark.parametrize(
    "src",
    [
        "__import__('os').system('x')",
        "1), g(2",
        "x=1",
        "*[1, 2]",
        "[i for i in range(3)]",
        "9**9**9",
        "(1,",
        "1" * 5000,  # past the int-digits limit
        "[" * 300 + "]" * 300,  # deep nesting
        "'a' * 10",
    ],
)
def test_parse_args_rejects_non_literals(src):
    assert parse_args(src) is None


def test_parse_args_size_cap():
    assert parse_args("1", max_chars=0) is None
    assert parse_args("[" + "1, " * 100 + "]", max_chars=50) is None


def test_parse_literal():
    assert parse_literal(" [1, 'a'] ") == (True, [1, "a"])
    assert parse_literal("<object object at 0x7f>") == (False, None)
    assert parse_literal("nan") == (False, None)
    assert parse_literal(None) == (False, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("program", "hit"),
    [
        ("import random", "random"),
        ("import numpy.random as r", "random"),
        ("from numpy import random", "random"),
        ("import os.path", "os.path"),
        ("from os import path", "os.path"),
        ("import os\nos.path.join('a', 'b')", "os.path"),
        ("import os as o\ndef f():\n    return o.path.join('a')", "os.path"),
        ("import sys\nsys.exit(0)", "sys.exit"),
        ("from sys import exit", "sys.exit"),
        ("import os\nx = os.environ['HOME']", "os.environ"),
        ("os = __import__('os')\nos.path.exists('x')", "os.path"),
        ("__import__('time')", "time"),
        ("m = __import__('ti' + 'me')", "computed"),
        ("import importlib\nimportlib.import_module('datetime')", "datetime"),
        ("import importlib as il\nil.import_module(name)", "computed"),
        ("def f():\n    import datetime\n    return datetime.date.today()", "datetime"),
    ],
)
def test_find_banned_hits(program, hit):
    import ast

    reason = find_banned(ast.parse(program), REFERENCE_BANNED_MODULES)
    assert reason is not None and hit in reason


@pytest.mark.parametrize(
    "program",
    [
        "import os\nos.getcwd()",
        "import sys\nsys.maxsize",
        "import collections, itertools, math, re",
        "def f(event):\n    return event.time + event.random",  # attributes of non-modules
        "def f(times):\n    return times",
        "import posixpath",
    ],
)
def test_find_banned_misses(program):
    import ast

    assert find_banned(ast.parse(program), REFERENCE_BANNED_MODULES) is None


def test_match_banned_dotted_and_single():
    assert match_banned("a.random.b", ["random"]) == "random"
    assert match_banned("x.os.path.y", ["os.path"]) == "os.path"
    assert match_banned("os", ["os.path"]) is None
    assert match_banned("os.pathlib", ["os.path"]) is None
    assert match_banned("random", ["random"], dotted_only=True) is None


def test_check_program_verdicts_and_imports():
    ok = check_program("from collections import Counter\nimport re\ndef f(x):\n    return x", REFERENCE_BANNED_MODULES)
    assert ok.verdict is None and ok.code is not None
    assert set(ok.imports) >= {"collections", "collections.Counter", "re"}
    assert check_program("def f(x:\n", ()).verdict == "syntax_error"
    assert check_program("x = 1\0", ()).verdict == "syntax_error"
    assert check_program("(" * 500 + ")" * 500, ()).verdict == "syntax_error"
    assert check_program("import random", REFERENCE_BANNED_MODULES).verdict == "banned_import"
    assert check_program("import random", REFERENCE_BANNED_MODULES, check_banned=False).verdict is None
    # The caller's `from __future__ import annotations` must not leak into the program.
    code = check_program("def f(x: int):\n    return x\n", ()).code
    namespace: dict = {}
    exec(code, namespace)  # test-only: trusted text
    assert namespace["f"].__annotations__ == {"x": int}


def test_code_imports():
    src = (
        "import a.b as c, d\nfrom e import f, g\nfrom . import h\nfrom .j import k\nfrom i import *\n"
        "def outer():\n    import m.n\n    class Inner:\n        from o import p\n    return Inner\n"
        "x = [__import__('q') for _ in range(2)]\n"
    )
    code = compile(src, "<t>", "exec")
    assert code_imports(code) == ["a.b", "d", "e", "e.f", "e.g", "i", "m.n", "o", "o.p"]
    assert code_imports(compile("import a\nimport b", "<t>", "exec"), limit=1) == ["a"]
    # Programs that name no banned module skip the syntax tree, and still report their imports.
    checked = check_program(
        "from collections import Counter\ndef f(x):\n    return Counter(x)", REFERENCE_BANNED_MODULES
    )
    assert checked.verdict is None and checked.imports == ("collections", "collections.Counter")


def test_non_ascii_programs_get_the_full_banned_scan():
    # NFKC turns full-width letters into `random`: the text filter alone would miss it.
    assert check_program("import \uff52\uff41\uff4e\uff44\uff4f\uff4d", REFERENCE_BANNED_MODULES).verdict == (
        "banned_import"
    )


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ("1", "1.0", True),
        ("[1, (2, 3)]", "[1, (2, 3)]", True),
        ("{'b': 1, 'a': 2}", "{'a': 2, 'b': 1}", True),
        ("{1, 2, 3}", "{3, 2, 1}", True),
        ("{1, 2}", "frozenset({1, 2})", False),  # frozenset(...) is a call, not a literal
        ("True", "1", False),
        ("False", "0", False),
        ("[True]", "[1]", False),
        ("[1, 2]", "(1, 2)", False),
        ("'a'", "b'a'", False),
        ("None", "None", True),
        ("'x'", "'x' ", True),
        ("1 + 0j", "1", True),
        ("f(1)", "f(1)", False),
        ("<object object at 0x1>", "<object object at 0x1>", False),
    ],
)
def test_literal_equal(a, b, equal):
    assert literal_equal(a, b) is equal
    assert literal_equal(b, a) is equal


@pytest.mark.parametrize(
    ("a", "b", "typed", "python"),
    [
        ("True", "1", False, True),
        ("False", "0.0", False, True),
        ("[True, 2]", "[1, 2]", False, True),
        ("{True: 'a'}", "{1: 'a'}", False, True),
        ("(False,)", "(0,)", False, True),
        ("1", "1.0", True, True),
        ("True", "2", False, False),
        ("[1, 2]", "(1, 2)", False, False),
        ("'a'", "b'a'", False, False),
        ("None", "0", False, False),
    ],
)
def test_value_equality_rules(a, b, typed, python):
    """value_equality: `typed` keeps bools and numbers apart; `python` is Python's == on the two literals."""
    for equality, equal in (("typed", typed), ("python", python)):
        assert literal_equal(a, b, equality=equality) is equal
        assert literal_equal(b, a, equality=equality) is equal
        assert (ast.literal_eval(a) == ast.literal_eval(b)) is python  # the rule python copies
    with pytest.raises(ValueError, match="value_equality"):
        literal_equal("1", "1", equality="loose")


def test_truncate_output_as_the_reference_keeps_outputs():
    long = repr([7] * 150)
    cut = truncate_output(long, 400)
    assert cut == long[:200] + "..." + long[-200:] and len(cut) == 403
    assert truncate_output(long, 0) == long and truncate_output("[1]", 400) == "[1]"
    assert truncate_output("x" * 400, 400) == "x" * 400  # longer than 400 only
    assert not literal_equal(repr([7] * 150), cut)


def test_values_equal_never_calls_custom_eq():
    class Liar:
        def __eq__(self, other):
            return True

    assert values_equal(Liar(), 1) is False
    assert values_equal({1: [2]}, {1: [2.0]}) is True


def test_audit_hook_policy_in_process():
    """The hook is called directly here (never installed in the test process)."""
    from azr_trl.executor._policy import ARM_EVENT, REPORT_EVENT, make_audit_hook

    hook = make_audit_hook(["/opt/py/lib"], (("random",), ("os", "path")))
    hook("open", ("/opt/py/lib/re.py", "r", 0))  # reading the Python installation is fine
    hook("import", ("random",))  # set-up imports run before the hook is armed
    for event, args in [
        ("open", ("/opt/py/lib/../../../etc/passwd", "r", 0)),
        ("open", ("/opt/py/lib/site-packages/x.py", "r", 0)),
        ("open", ("/opt/py/lib/new.py", "w", 0)),
        ("open", ("/opt/py/lib/new.py", None, 0o101)),  # os.open(O_WRONLY | O_CREAT)
        ("open", (3, "w", 0)),
        ("os.system", (b"id",)),
        ("socket.connect", (None, ("127.0.0.1", 80))),
        ("ctypes.dlopen", ("libc.so.6",)),
        ("import", ("ctypes",)),
    ]:
        with pytest.raises(PermissionError):
            hook(event, args)
    hook(ARM_EVENT, ())
    with pytest.raises(ImportError):
        hook("import", ("os.path",))
    with pytest.raises(PermissionError):
        hook("marshal.loads", (b"",))
    findings: list = []
    hook(REPORT_EVENT, (findings,))
    assert findings == ["os.path", "reading files outside the Python installation"]
    # A look-alike argument type is refused instead of having its methods run inside the hook.
    with pytest.raises(PermissionError):
        hook("open", (type("P", (str,), {})("/opt/py/lib/re.py"), "r", 0))
