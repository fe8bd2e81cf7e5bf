"""``azr-trl validate IN.jsonl --output OUT.jsonl``: run every task of a JSONL file through the sandbox.

Rows with ``program`` + ``input`` are deduction/abduction triplets; rows with ``program`` + ``inputs`` (a list) are
induction tasks. The output has exactly one row per input row, in order, with every input field kept and ``valid``,
``status``, ``output`` (``outputs`` for induction) and ``error`` added. Invalid tasks are results, not failures: the
exit code is 0 once every row is processed; an unreadable file or a malformed JSON line is a one-line error naming it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

from azr_trl.cli.executor_args import add_executor_arguments, executor_config_from_args


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="run the programs of a task file in the sandbox and write verdicts and outputs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", metavar="IN.jsonl", help="tasks: rows with program + input, or program + inputs")
    parser.add_argument("--output", "-o", required=True, metavar="OUT.jsonl", help="where to write the results")
    add_executor_arguments(parser)
    parser.add_argument(
        "--no-banned-check", action="store_true", help="do not reject programs that use the banned modules"
    )
    parser.set_defaults(func=run)


class InputError(Exception):
    """A problem with the input file itself (reported in one line, exit code 2)."""


def read_rows(path: str) -> list[tuple[int, dict]]:
    """``(line number, row)`` for every non-blank line; raises :class:`InputError` naming the file and line."""
    from azr_trl.jsonl import read_jsonl

    try:
        rows = read_jsonl(path)
    except (OSError, ValueError) as err:
        raise InputError(str(err)) from None
    for number, row in rows:
        if isinstance(row, str):
            raise InputError(f"{path} line {number}: {row}")
    return rows


def _row_problem(row: dict) -> str | None:
    """Why a row cannot be run at all (it then becomes an ``invalid_input`` result), or ``None``."""
    if not isinstance(row.get("program"), str):
        return "the row has no 'program' string"
    if "inputs" in row:
        inputs = row["inputs"]
        if not isinstance(inputs, list) or not inputs or not all(isinstance(x, str) for x in inputs):
            return "'inputs' must be a non-empty list of argument-list strings"
        return None
    if not isinstance(row.get("input"), str):
        return "the row has no 'input' string (argument-list source such as \"'ab', [1, 2]\")"
    return None


def validate_rows(rows: list[dict], executor, check_banned: bool = True, progress: bool = False) -> list[dict]:
    """Annotate ``rows`` (copies) with ``valid``/``status``/``output(s)``/``error``, running all programs in one batch."""
    from azr_trl.executor import ExecJob, Verdict

    jobs: list[ExecJob] = []
    spans: list[tuple[int, int] | None] = []
    for row in rows:
        if _row_problem(row) is not None:
            spans.append(None)
            continue
        inputs = row["inputs"] if "inputs" in row else [row["input"]]
        spans.append((len(jobs), len(inputs)))
        jobs.extend(ExecJob(row["program"], x, check_banned=check_banned) for x in inputs)
    results = executor.run(jobs, progress=progress)
    annotated = []
    for row, span in zip(rows, spans, strict=True):
        out = dict(row)
        induction = "inputs" in row
        if span is None:
            out.update(
                {"valid": False, "status": str(Verdict.INVALID_INPUT), "outputs" if induction else "output": None}
            )
            out["error"] = _row_problem(row)
            annotated.append(out)
            continue
        first, count = span
        chunk = results[first : first + count]
        bad = next(((k, r) for k, r in enumerate(chunk) if not r.ok), None)
        out["valid"] = bad is None
        out["status"] = str(Verdict.OK if bad is None else bad[1].status)
        if induction:
            out["outputs"] = [r.output if r.ok else None for r in chunk]
            out["error"] = None if bad is None else f"input {bad[0]}: {bad[1].error or bad[1].status}"
        else:
            out["output"] = chunk[0].output if chunk[0].ok else None
            out["error"] = None if bad is None else (bad[1].error or str(bad[1].status))
        annotated.append(out)
    return annotated


def run(args: argparse.Namespace) -> int:
    from azr_trl.executor import ExecutorError, make_executor

    try:
        config = executor_config_from_args(args)
        numbered = read_rows(args.input)
    except (InputError, ValueError) as err:
        print(f"azr-trl validate: error: {err}", file=sys.stderr)
        return 2
    try:
        with make_executor(config) as executor:
            annotated = validate_rows([row for _, row in numbered], executor, not args.no_banned_check, progress=True)
    except (ExecutorError, ImportError) as err:
        print(f"azr-trl validate: error: {err}", file=sys.stderr)
        return 1
    try:
        with open(args.output, "w", encoding="utf-8") as handle:
            for row in annotated:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    except OSError as err:
        print(f"azr-trl validate: error: cannot write {args.output}: {err}", file=sys.stderr)
        return 2
    counts = Counter(row["status"] for row in annotated)
    valid = sum(row["valid"] for row in annotated)
    summary = ", ".join(f"{status} {n}" for status, n in counts.most_common())
    print(f"{len(annotated)} rows: {valid} valid ({summary}); wrote {args.output}", file=sys.stderr)
    return 0
