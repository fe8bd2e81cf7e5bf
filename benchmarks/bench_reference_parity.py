"""Side by side with the reference AZR code: do we read and score completions as it does, completion for completion?

    python benchmarks/bench_reference_parity.py --reference-dir DIR [--preset reference|paper|both] [--seed 0]
        [--solve-per-cell 150] [--propose-per-cell 50] [--mc-rollouts 4] [--timeout 5] [--examples 1] [--dump F]

``DIR`` is a checkout of LeapLabTHU/Absolute-Zero-Reasoner (``paper`` branch or ``master``), fetched by whoever runs
this; nothing of it is part of this project. It needs the ``bench`` extra (``pip install -e '.[bench]'``).

A seeded corpus of tasks (``parity_programs.py``), solver completions, proposals and Monte-Carlo rollouts
(``parity_corpus.py``), for the three task types, both roles and both prompt formats, goes through both sides:

- ours: the task specs built from ``AZRConfig(preset=...)`` exactly as the trainer builds them, ``parse_answer`` /
  ``parse_proposal`` (``monte_carlo=True`` for the rollouts), validation and grading in our sandboxed executor, and
  the reward functions' arithmetic;
- the reference: its own reward manager, parsers and executor (``parity_reference.py`` says which functions run for
  real and what stands in for verl and the tokenizer).

Compared, per role, task type and prompt format: solver rewards; proposer rewards; validity verdicts (the answer's
content: parse and executor, the reference's ``code_validity``); buffer entry (validity and a well-formed envelope
here, validity alone there); format verdicts; and each Monte-Carlo rollout's grade. Then every disagreement class with
its count, one example and the row of ``docs/paper-vs-reference.md`` that explains it (``parity_classes.py``). A class without a row is printed
as UNEXPLAINED and makes the exit status non-zero.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from parity_classes import UNEXPLAINED, explain  # noqa: E402
from parity_corpus import ProposeCase, induction_proposal, solve_completion, triplet_proposal  # noqa: E402
from parity_programs import PROGRAMS  # noqa: E402
from parity_reference import Reference  # noqa: E402

from azr_trl.executor import ExecJob, ExecutorConfig, make_executor  # noqa: E402
from azr_trl.tasks import Task  # noqa: E402
from azr_trl.tasks.prompts import prompt_text  # noqa: E402


TASK_TYPES = ("deduction", "abduction", "induction")
FORMATS = ("r1", "chat")
INDUCTION_MESSAGE = "Look at how each output follows from its input."


@dataclass
class Row:
    """One compared item: what it is, both sides' verdicts, and the details used to explain a difference."""

    kind: str  # "solve", "propose" or "mc" (a Monte-Carlo rollout, compared as a solver completion without format)
    task_type: str
    fmt: str
    traits: tuple[str, ...]
    completion: str
    ours: dict[str, Any] = field(default_factory=dict)
    ref: dict[str, Any] = field(default_factory=dict)

    def differs(self, key: str) -> bool:
        a, b = self.ours.get(key), self.ref.get(key)
        if isinstance(a, float) and isinstance(b, float):
            return abs(a - b) > 1e-6
        return a != b


# ----------------------------------------------------------------------------------------------------------------------
# Tasks both sides hold


def build_tasks(executor, reference: Reference, rng: random.Random, per_program: int) -> dict[str, list[dict]]:
    """Deduction/abduction/induction tasks from the program library, valid on both sides, with both gold outputs."""
    triplets, inductions = [], []
    for seed in PROGRAMS:
        drawn = []
        for _ in range(per_program):
            drawn.append(seed.draw(rng))
        jobs = [ExecJob(seed.program, src) for src in drawn]
        for src, result in zip(drawn, executor.run(jobs), strict=True):
            ok, ref_output = reference.gold_output(seed.program, src)
            if result.ok and ok:
                triplets.append(
                    {"program": seed.program, "input": src, "output": result.output, "ref_output": ref_output,
                     "traits": seed.traits, "name": seed.name, "weight": seed.weight}
                )  # fmt: skip
        inputs = list(dict.fromkeys(seed.draw(rng) for _ in range(60)))[:10]
        if len(inputs) < 10:
            continue
        results = executor.run([ExecJob(seed.program, src) for src in inputs])
        ref = [reference.gold_output(seed.program, src) for src in inputs]
        if all(r.ok for r in results) and all(ok for ok, _ in ref):
            inductions.append(
                {"program": seed.program, "inputs": inputs, "outputs": [r.output for r in results],
                 "ref_outputs": [out for _, out in ref], "message": INDUCTION_MESSAGE, "traits": seed.traits,
                 "name": seed.name, "weight": seed.weight}
            )  # fmt: skip
    return {"deduction": triplets, "abduction": triplets, "induction": inductions}


def draw(rng: random.Random, tasks: list[dict], k: int) -> list[dict]:
    """``k`` tasks drawn with their program's weight (with replacement)."""
    return rng.choices(tasks, [t["weight"] for t in tasks], k=k)


def our_task(task_type: str, task: dict, spec) -> Task:
    """The task as our buffer holds it: its gold output(s) kept as ``spec``'s validation keeps them."""
    if task_type == "induction":
        outputs = [spec.gold_output(out) for out in task["outputs"]]
        return Task("induction", task["program"], inputs=task["inputs"], outputs=outputs, message=task["message"])
    return Task(task_type, task["program"], input=task["input"], output=spec.gold_output(task["output"]))


def ref_task(task_type: str, task: dict) -> dict:
    if task_type == "induction":
        return {"task_type": "induction", "program": task["program"], "inputs": task["inputs"],
                "outputs": task["ref_outputs"], "message": task["message"]}  # fmt: skip
    return {"task_type": task_type, "program": task["program"], "input": task["input"], "output": task["ref_output"]}


def reference_prompt(prompt, fmt: str) -> str:
    """The text the reference decodes before the completion: the r1 prompt itself (it ends in ``Assistant: <think>``).

    The reference has no chat format. A chat completion is given to it after the user message and the same
    ``Assistant: <think>`` ending, i.e. read as if the chat template had opened the think block (as those of reasoning
    models do, and as our reader reads it).
    """
    return prompt if fmt == "r1" else prompt_text(prompt) + "\nAssistant: <think>"


# ----------------------------------------------------------------------------------------------------------------------
# Our side


class Ours:
    """Our trainer's reading and scoring, from the config of one preset."""

    def __init__(self, preset: str, executor):
        from azr_trl import AZRConfig
        from azr_trl.azr_config import task_spec
        from azr_trl.selfplay.rewards import RewardSettings

        self.tmp = tempfile.TemporaryDirectory(prefix="azr-parity-ours-")
        self.config = AZRConfig(output_dir=self.tmp.name, max_steps=1, use_cpu=True, report_to="none", preset=preset)
        self.specs = {t: task_spec(self.config, t) for t in TASK_TYPES}
        self.settings = RewardSettings.from_config(self.config)
        self.executor = executor

    def require_think(self, fmt: str) -> bool:
        from azr_trl.tasks.prompts import resolve_prompt_format

        return resolve_prompt_format(fmt, self.config.require_think, None)[1]

    def solve(self, task_type: str, tasks: list[Task], completions: list[str], fmt: str | None) -> list[dict]:
        """fmt None: Monte-Carlo rollouts (read as the trainer reads them, no format requirement)."""
        from azr_trl.selfplay.rewards import solver_reward

        spec = self.specs[task_type]
        if fmt is None:
            answers = [spec.parse_answer(text, require_think=False, monte_carlo=True) for text in completions]
        else:
            answers = [spec.parse_answer(text, require_think=self.require_think(fmt)) for text in completions]
        correct = spec.verify(self.executor, tasks, answers) if tasks else []
        return [
            {"format": a.format_ok, "answer": a.answer, "correct": bool(c),
             "reward": solver_reward(a.format_ok, c, self.settings), "error": a.error}
            for a, c in zip(answers, correct, strict=True)
        ]  # fmt: skip

    def propose(self, case: ProposeCase, prompt_refs: list[Task]) -> tuple[dict, Task | None]:
        from azr_trl.tasks import validate_candidates

        spec = self.specs[case.task_type]
        require_think = self.require_think(case.fmt)
        proposal = spec.parse_proposal(case.completion, prompt_refs, require_think=require_think)
        # The validity verdict is on the answer's content, whatever the envelope (the reference's code_validity);
        # the buffer takes a task only when the envelope is right too.
        envelope = spec.reader.envelope(case.completion, require_think)
        content = spec.read_proposal(envelope.answer, prompt_refs) if envelope.answer is not None else proposal
        task, verdict = None, content.error
        if content.candidate is not None:
            task, verdict = validate_candidates(self.executor, [(spec, content.candidate)])[0]
        result = {"format": proposal.format_ok, "valid": task is not None, "verdict": verdict}
        result["buffer"] = proposal.candidate is not None and task is not None
        return result, (task if result["buffer"] else None)

    def proposer_reward(self, result: dict, rate: float | None) -> float:
        from azr_trl.selfplay.rewards import proposer_reward

        return proposer_reward(result["format"], result["valid"], rate, None, self.settings)


# ----------------------------------------------------------------------------------------------------------------------
# The run


def run_solve(ours: Ours, reference: Reference, tasks, rng, per_cell: int) -> list[Row]:
    rows: list[Row] = []
    for fmt in FORMATS:
        for task_type in TASK_TYPES:
            chosen = draw(rng, tasks[task_type], per_cell)
            built = [solve_completion(task_type, t, fmt, rng) for t in chosen]
            spec = ours.specs[task_type]
            held = [our_task(task_type, t, spec) for t in chosen]
            prompts = [spec.solve_prompt(task, fmt) for task in held]
            mine = ours.solve(task_type, held, [c for c, _ in built], fmt)
            theirs = reference.solve(
                [reference_prompt(p, fmt) for p in prompts],
                [c for c, _ in built],
                [ref_task(task_type, t) for t in chosen],
                task_type,
            )
            for t, (text, traits), m, r in zip(chosen, built, mine, theirs, strict=True):
                ref = {
                    "format": r.format_score > 0,
                    "answer": r.answer,
                    "reward": r.reward,
                    "generation": r.generation,
                }
                rows.append(Row("solve", task_type, fmt, traits + tuple(t["traits"]), text, m, ref))
    return rows


def mc_task(task_type: str, our: Task | None, ref: dict | None) -> dict | None:
    """The task the Monte-Carlo rollouts are written for: ours when valid, else the reference's."""
    if our is not None:
        if task_type == "induction":
            return {"program": our.program, "inputs": our.inputs, "outputs": our.outputs, "message": our.message}
        return {"program": our.program, "input": our.input, "output": our.output}
    if ref is None:
        return None
    if task_type == "induction":
        return {
            "program": ref["snippet"],
            "inputs": ref["inputs"],
            "outputs": ref["outputs"],
            "message": ref["message"],
        }
    return {"program": ref["snippet"], "input": ref["input"], "output": ref["output"]}


def run_propose(ours: Ours, reference: Reference, tasks, rng, per_cell: int, mc_rollouts: int) -> list[Row]:
    """Proposal rows, and one ``mc`` row per Monte-Carlo rollout of a task both sides hold."""
    rows: list[Row] = []
    for fmt in FORMATS:
        for task_type in TASK_TYPES:
            for _ in range(per_cell):
                # The rollouts draw from a stream of their own, taken whatever the verdicts: the proposals and solver
                # completions of a seed are then the same for every version of either side, so runs compare.
                mc_rng = random.Random(rng.getrandbits(64))
                seed = rng.choices(PROGRAMS, [s.weight for s in PROGRAMS])[0]
                reference_task = None
                if task_type == "induction":
                    chosen = draw(rng, tasks["deduction"], 1)[0]
                    seed = next(s for s in PROGRAMS if s.name == chosen["name"])
                    reference_task = {
                        "program": chosen["program"],
                        "input": chosen["input"],
                        "output": chosen["output"],
                    }
                    text, traits = induction_proposal(reference_task, seed.draw, fmt, rng)
                    prompt_refs = [Task("deduction", **reference_task)]
                else:
                    text, traits = triplet_proposal(seed, fmt, rng)
                    refs = draw(rng, tasks[task_type], 3)
                    prompt_refs = [Task(task_type, t["program"], input=t["input"], output=t["output"]) for t in refs]
                if any("Assistant:" in t.program for t in prompt_refs):
                    traits += ("prompt:assistant_marker",)
                if not any(t.startswith("prog:odd") for t in traits):
                    traits += seed.traits
                case = ProposeCase(task_type, fmt, text, traits, reference=reference_task)
                prompt = ours.specs[task_type].propose_prompt(prompt_refs, fmt)
                mine, task = ours.propose(case, prompt_refs)
                theirs = reference.propose(reference_prompt(prompt, fmt), text, task_type, reference_task)
                target = mc_task(task_type, task, theirs.task if theirs.valid else None)
                rollouts = [_mc_completion(task_type, target, mc_rng) for _ in range(mc_rollouts)] if target else []
                rate = None
                if task is not None and rollouts:
                    mc = ours.solve(task_type, [task] * len(rollouts), [r for r, _ in rollouts], None)
                    rate = sum(m["correct"] for m in mc) / len(mc)
                mine["mc_rate"] = rate
                mine["reward"] = ours.proposer_reward(mine, rate)
                reference.monte_carlo(theirs, task_type, [r for r, _ in rollouts])
                ref = {"format": theirs.format_score > 0 and theirs.valid, "valid": theirs.valid,
                       "buffer": theirs.valid, "reward": theirs.reward, "mc_rate": theirs.mc_accuracy}  # fmt: skip
                mine["format"] = mine["format"] and mine["valid"]
                row = Row("propose", task_type, fmt, traits, text, mine, ref)
                rows.append(row)
                if task is None or not theirs.valid:
                    continue
                for (rollout, mc_traits), m, answer, score in zip(
                    rollouts, mc, theirs.mc_answers, theirs.mc_scores, strict=True
                ):
                    mc_row = Row("mc", task_type, "r1", mc_traits + traits, rollout)
                    mc_row.ours = {"correct": m["correct"], "answer": m["answer"]}
                    mc_row.ref = {"correct": bool(score), "answer": answer}
                    row.ours.setdefault("mc_rows", []).append(mc_row)
                    rows.append(mc_row)
    return rows


def _mc_completion(task_type: str, task: dict, rng: random.Random) -> tuple[str, tuple[str, ...]]:
    """One Monte-Carlo rollout (r1, as the reference samples them) and its traits."""
    try:
        return solve_completion(task_type, task, "r1", rng)
    except (ValueError, SyntaxError, TypeError):
        # The reference stored '' (a program that raised), a truncated output or a call as the input: no value to
        # write an answer from.
        return " no idea </think> <answer>```output\nNone\n```</answer>", ("val:unknown_gold",)


# ----------------------------------------------------------------------------------------------------------------------
# Report


COMPARED = {"solve": ("reward", "format"), "propose": ("reward", "valid", "buffer", "format"), "mc": ("correct",)}


def agreement_table(rows: list[Row]) -> list[str]:
    """Agreement rates per (role, task type, format): rewards, validity verdicts, buffer entry, format verdicts."""
    header = f"{'role':8} {'task type':10} {'format':6} {'n':>5}"
    lines = [header + "".join(f"  {name:>8}" for name in ("reward", "validity", "buffer", "format", "correct"))]
    cells: dict[tuple, list[Row]] = defaultdict(list)
    for row in rows:
        for key in ((row.kind, row.task_type, row.fmt), (row.kind, row.task_type, "all"), (row.kind, "all", "all")):
            cells[key].append(row)
    order = {"solve": 0, "propose": 1, "mc": 2}
    for key in sorted(cells, key=lambda k: (order[k[0]], k[1] == "all", k[1], k[2] == "all", k[2])):
        group = cells[key]
        line = f"{key[0]:8} {key[1]:10} {key[2]:6} {len(group):5d}"
        for name in ("reward", "valid", "buffer", "format", "correct"):
            if name in COMPARED[key[0]]:
                line += f"  {sum(not r.differs(name) for r in group) / len(group):8.1%}"
            else:
                line += " " * 10
        lines.append(line.rstrip())
    return lines


def report(preset: str, rows: list[Row], examples: int) -> int:
    """Print the agreement table and the disagreement classes; returns how many rows no rule explains."""
    print(f"\n=== preset: {preset} ===")
    print("\n".join(agreement_table(rows)))
    classes: dict[tuple[str, str | None], list[Row]] = defaultdict(list)
    for row in rows:
        if any(row.differs(name) for name in COMPARED[row.kind]):
            classes[explain(row, preset)].append(row)
    print(f"\n{sum(len(v) for v in classes.values())} rows disagree, in {len(classes)} classes:")
    for (name, readme), members in sorted(classes.items(), key=lambda kv: (kv[0][1] is not None, -len(kv[1]))):
        counts = Counter(f"{r.kind}/{r.task_type}" for r in members)
        print(f"\n[{len(members)}] {name}   ({', '.join(f'{k}: {v}' for k, v in counts.most_common())})")
        print(f"  docs row: {readme}" if readme else "  docs row: NONE")
        for row in members[:examples]:
            print(f"  traits: {' '.join(row.traits)}")
            print(f"  completion: {row.completion[-300:]!r}")
            print(f"  ours: {_brief(row.ours)}")
            print(f"  ref:  {_brief(row.ref)}")
    return sum(len(members) for (name, _), members in classes.items() if name == UNEXPLAINED)


def _brief(side: dict) -> str:
    return str({k: v for k, v in side.items() if k not in ("mc_rows", "generation", "task")})[:400]


def dump(rows: list[Row], path: str) -> None:
    import json

    with open(path, "w") as f:
        for row in rows:
            data = {**row.__dict__, "ours": {k: v for k, v in row.ours.items() if k != "mc_rows"}}
            f.write(json.dumps(data, default=repr) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-dir", required=True, help="checkout of the reference AZR repository")
    parser.add_argument("--preset", choices=("reference", "paper", "both"), default="both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--solve-per-cell", type=int, default=150, help="solver completions per (task type, format)")
    parser.add_argument("--propose-per-cell", type=int, default=50, help="proposals per (task type, format)")
    parser.add_argument("--mc-rollouts", type=int, default=4, help="Monte-Carlo rollouts per valid proposal")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per program, both executors")
    parser.add_argument("--examples", type=int, default=1, help="examples printed per disagreement class")
    parser.add_argument("--dump", default=None, help="write every compared row as JSON lines to this file")
    args = parser.parse_args()

    reference = Reference(
        args.reference_dir, args.timeout, reject_multiple_functions=False, f_replace_location="any_last"
    )
    executor = make_executor(ExecutorConfig(timeout=args.timeout, workers=2))
    print(f"reference: {reference.label}")
    try:
        presets = ("reference", "paper") if args.preset == "both" else (args.preset,)
        unexplained = 0
        for preset in presets:
            start = time.perf_counter()
            rng = random.Random(args.seed)
            tasks = build_tasks(executor, reference, rng, per_program=4)
            ours = Ours(preset, executor)
            rows = run_solve(ours, reference, tasks, rng, args.solve_per_cell)
            rows += run_propose(ours, reference, tasks, rng, args.propose_per_cell, args.mc_rollouts)
            print(f"\ncorpus (seed {args.seed}): {sum(r.kind == 'solve' for r in rows)} solver completions, "
                  f"{sum(r.kind == 'propose' for r in rows)} proposals, "
                  f"{sum(r.kind == 'mc' for r in rows)} Monte-Carlo rollouts compared; "
                  f"{time.perf_counter() - start:.0f} s")  # fmt: skip
            unexplained += report(preset, rows, args.examples)
            if args.dump:
                dump(rows, args.dump.replace(".jsonl", f".{preset}.jsonl"))
    finally:
        executor.close()
        reference.close()
    if unexplained:
        raise SystemExit(f"{unexplained} disagreeing rows have no docs row (UNEXPLAINED above)")


if __name__ == "__main__":
    main()
