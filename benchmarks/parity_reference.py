"""The reference side of ``bench_reference_parity.py``: the reference AZR code's own functions, loaded from a checkout.

Nothing of the reference is part of this project: whoever runs the benchmark fetches a checkout of
LeapLabTHU/Absolute-Zero-Reasoner (its ``paper`` branch, or ``master``) and passes its directory.

What runs for real, imported unmodified from ``DIR/absolute_zero_reasoner``:

- ``rewards/reward_managers.py``: ``CodeIORewardManager._get_data_dict`` for every completion (the decode, the split
  on ``Assistant:``, answer and format extraction, proposal parsing, ``check_all`` validation, solver parsing),
  ``CodeIORewardManager.__call__`` for solver rewards (the ``pred_*`` branch, with its executor calls), and
  ``CodeIORewardManager.extract_input_output`` for the Monte-Carlo answers;
- ``rewards/custom_evaluate.py`` (``extract_answer``, ``get_format_reward``), ``rewards/code_reward.py``
  (``parse_code_input_output``, ``parse_inputs_message``, ``parse_code_function``), ``utils/code_utils/parsers.py``
  (``parse_imports``), ``utils/code_utils/checks.py`` (``contains_banned_imports``);
- ``utils/code_utils/python_executor.py``: ``PythonExecutor`` with the trainer's settings (one pebble worker,
  ``ast_check``), for validation and for every grading call.

What stands in:

- modules on paths this benchmark never takes (verl, its dataset loader, the math grader, the code formatters of the
  intrinsic metrics): empty modules whose every name raises if it is used, so nothing silently runs in their place;
- the tokenizer: a lossless character codec (one token per code point), so decode(encode(text)) is the text;
- verl's ``DataProto``: a container with the fields ``__call__`` and ``_get_data_dict`` read;
- the Monte-Carlo loop of ``_get_problem_generator_rewards_and_valid_programs`` and the proposer-reward lines of
  ``__call__``'s ``gen`` branch: their call sequence, rebuilt here over the real functions above (the real loop
  needs verl's rollout workers to generate).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


# Modules the reward manager imports but this benchmark never exercises.
_STUBBED = (
    "verl",
    "verl.protocol",
    "verl.utils",
    "verl.utils.dataset",
    "verl.utils.dataset.rl_dataset",
    "absolute_zero_reasoner.utils.dataset.rl_dataset",
    "absolute_zero_reasoner.data_construction.process_data",
    "absolute_zero_reasoner.rewards.math_utils",
    "math_verify",
    "black",
    "autopep8",
    "complexipy",
)

# The reference's banned list (azr.data_selection_strategy.banned_words in its scripts).
REFERENCE_BANNED_WORDS = [
    "logging", "random", "multiprocessing", "pebble", "subprocess", "threading", "datetime", "time", "hashlib", "hmac",
    "bcrypt", "os.sys", "os.path", "sys.exit", "os.environ", "calendar", "datetime",
]  # fmt: skip

PROBLEM_TYPES = {"deduction": "code_o", "abduction": "code_i", "induction": "code_f"}


class _Unavailable:
    """A name of a stubbed module: raises when called or instantiated."""

    def __init__(self, name: str):
        self._name = name

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f"{self._name} is stubbed out in the parity benchmark and must not run")

    def __getattr__(self, attr: str):
        return _Unavailable(f"{self._name}.{attr}")


def _stub(name: str) -> None:
    module = types.ModuleType(name)
    module.__path__ = []  # a package, so that its stubbed submodules resolve

    def missing(attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Unavailable(f"{name}.{attr}")

    module.__getattr__ = missing
    sys.modules[name] = module


class CharCodec:
    """The tokenizer stand-in: token id = Unicode code point, so decoding gives back exactly the text."""

    eos_token_id = pad_token_id = 0

    def encode(self, text: str) -> list[int]:
        return [ord(ch) for ch in text]

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        values = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        return "".join(chr(i) for i in values)


class _Item:
    """One row as ``_get_data_dict`` reads it: prompt and response token ids, and the non-tensor fields."""

    def __init__(self, torch, prompt: str, response: str, non_tensor: dict[str, Any]):
        codec = CharCodec()
        prompt_ids = torch.tensor(codec.encode(prompt), dtype=torch.long)
        response_ids = torch.tensor(codec.encode(response), dtype=torch.long)
        self.batch = {
            "prompts": prompt_ids,
            "responses": response_ids,
            "attention_mask": torch.ones(len(prompt_ids) + len(response_ids), dtype=torch.long),
        }
        self.non_tensor_batch = non_tensor


class _Batch:
    """The rows of one ``__call__``: ``len``, indexing, and a padded ``responses`` tensor for the reward tensor."""

    def __init__(self, torch, items: list[_Item]):
        self._items = items
        width = max([len(item.batch["responses"]) for item in items] + [1])
        self.batch = {"responses": torch.zeros(len(items), width, dtype=torch.long)}

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> _Item:
        return self._items[index]


@dataclass
class RefSolve:
    """The reference's reading and grading of one solver completion."""

    generation: str
    answer: Any  # what it grades: the extracted literal text, or the induction program
    format_score: float
    reward: float


@dataclass
class RefProposal:
    """The reference's reading of one proposal: validity, format, the task it would store, and its reward."""

    valid: bool
    format_score: float
    task: dict[str, Any] | None
    reward: float | None = None
    mc_accuracy: float | None = None
    mc_answers: list[Any] = field(default_factory=list)
    mc_scores: list[float | None] = field(default_factory=list)


class Reference:
    """The reference's reward manager and executor, loaded from ``directory`` (a checkout of the reference repo)."""

    label = "reference AZR code (real: CodeIORewardManager._get_data_dict/__call__, its parsers, PythonExecutor)"

    def __init__(self, directory: str, timeout: float, reject_multiple_functions: bool, f_replace_location: str):
        root = Path(directory)
        manager_path = root / "absolute_zero_reasoner/rewards/reward_managers.py"
        if not manager_path.is_file():
            raise SystemExit(f"--reference-dir {directory}: no {manager_path}; pass a checkout of the reference repo")
        for name in _STUBBED:
            _stub(name)
        sys.path.insert(0, str(root.resolve()))
        try:
            import torch
            from absolute_zero_reasoner.rewards import reward_managers
            from absolute_zero_reasoner.rewards.code_reward import parse_code_function
            from absolute_zero_reasoner.rewards.custom_evaluate import extract_answer
            from absolute_zero_reasoner.utils.code_utils.parsers import parse_imports
            from absolute_zero_reasoner.utils.code_utils.python_executor import PythonExecutor
        except ImportError as err:
            raise SystemExit(
                f"cannot import the reference reward code from {directory} ({err}); it needs pebble, "
                "timeout-decorator, regex, python-dateutil, numpy, pandas and tqdm: pip install -e '.[bench]'"
            ) from None
        self._torch = torch
        self._extract_answer = extract_answer
        self._parse_code_function = parse_code_function
        self.parse_imports = parse_imports
        self._tmp = tempfile.TemporaryDirectory(prefix="azr-parity-")
        # The Llama/Qwen3 scripts' parser settings by default (ours: helpers allowed, the last function renamed);
        # everything else as in azr_ppo_trainer.yaml.
        self.config = types.SimpleNamespace(
            format_reward=True,
            reject_multiple_functions=reject_multiple_functions,
            f_replace_location=f_replace_location,
            reject_test_input_in_code=False,
            remove_after_return=False,
            remove_comments=False,
            remove_print=False,
            use_original_code_as_ref=True,
            generation_accuracy_convertion="one_minus",
        )
        self.manager = reward_managers.CodeIORewardManager(
            tokenizer=CharCodec(),
            num_examine=0,
            split="train",
            reward_fn_extraction_type="answer_conditional",
            math_metric="math_verify",
            splitter="Assistant:",
            output_path=self._tmp.name,
            generation_reward_config=self.config,
            valid_program_filter="all",
            batched_estimate=False,
            extract_code_block=True,
            code_f_reward_type="binary",
            boxed_retry=False,
        )
        self.executor = PythonExecutor(timeout_length=timeout, ast_check=True, max_workers=1)

    def close(self) -> None:
        self.executor.cleanup()
        self._tmp.cleanup()

    # ------------------------------------------------------------------ tasks
    def gold_output(self, program: str, input_src: str) -> tuple[bool, str]:
        """``check_all`` as validation calls it: (valid, the output string the reference stores)."""
        with _quiet():
            valid, output = self.executor.check_all(
                code=program,
                inputs=input_src,
                banned_keywords=REFERENCE_BANNED_WORDS,
                check_determinism=True,
                imports=list(set(self.parse_imports(program))),
                check_error=False,
            )
        return bool(valid), output

    def _task_fields(self, task: dict[str, Any]) -> dict[str, Any]:
        imports = self.parse_imports(task["program"])
        if task["task_type"] == "induction":
            half = len(task["inputs"]) // 2
            extra = {
                "given_inputs": task["inputs"][:half],
                "given_outputs": task["outputs"][:half],
                "hidden_inputs": task["inputs"][half:],
                "hidden_outputs": task["outputs"][half:],
                "message": task["message"],
                "imports": imports,
            }
        else:
            extra = {"input": task["input"], "output": task["output"], "imports": imports}
        return {
            "problem": task["program"],
            "reward_model": {"ground_truth": task.get("output", "")},
            "data_source": "parity",
            "extra_info": extra,
        }

    # ------------------------------------------------------------------ solve
    def solve(
        self, prompt: str, completions: list[str], tasks: list[dict[str, Any]], task_type: str
    ) -> list[RefSolve]:
        """The reward manager's solver path on one batch of one task type: ``__call__`` on ``pred_<type>``."""
        problem_type = "pred_" + PROBLEM_TYPES[task_type]
        items = [
            _Item(self._torch, prompt_text, completion, self._task_fields(task))
            for prompt_text, completion, task in zip(prompt, completions, tasks, strict=True)
        ]
        batch = _Batch(self._torch, items)
        with _quiet():
            dicts = [self.manager._get_data_dict(item, problem_type, self.executor, [], "uid", []) for item in items]
            reward_tensor, _, _, _ = self.manager(batch, problem_type=problem_type, executor=self.executor)
        out = []
        for i, data in enumerate(dicts):
            answer = data.get("answer")
            if isinstance(answer, dict):
                answer = answer["snippet"]
            out.append(
                RefSolve(data["generation"], answer, float(data["format_score"]), float(reward_tensor[i].sum()))
            )
        return out

    # ------------------------------------------------------------------ propose
    def propose(
        self, prompt: str, completion: str, task_type: str, reference_task: dict[str, Any] | None
    ) -> RefProposal:
        """``_get_data_dict`` on ``gen_<type>``: parse, validate with ``check_all``, format score."""
        problem_type = "gen_" + PROBLEM_TYPES[task_type]
        refs = []
        if reference_task is not None:
            refs = [
                {
                    "snippet": reference_task["program"],
                    "original_snippet": reference_task["program"],
                    "imports": self.parse_imports(reference_task["program"]),
                }
            ]
        import numpy

        non_tensor = {
            "reward_model": {"ground_truth": ""},
            "data_source": "parity",
            "extra_info": {"chosen_references": refs, "composite_functions": numpy.array([])},
        }
        item = _Item(self._torch, prompt, completion, non_tensor)
        with _quiet():
            data = self.manager._get_data_dict(item, problem_type, self.executor, REFERENCE_BANNED_WORDS, "uid", [])
        valid = bool(data.get("code_validity"))
        return RefProposal(valid, float(data["format_score"]), data.get("answer") if valid else None)

    def monte_carlo(self, proposal: RefProposal, task_type: str, responses: list[str]) -> None:
        """The learnability estimate of a valid proposal from its Monte-Carlo responses, and its final reward.

        Rebuilt call sequence of ``_get_problem_generator_rewards_and_valid_programs`` (responses decoded alone,
        ``extract_answer``, ``extract_input_output`` / ``parse_code_function``, the executor's grading with an answer
        cache, the mean, ``one_minus``) and of the proposer lines of ``__call__`` (format > 0: the learnability if
        positive, else -0.5; format 0: -1). Sets ``mc_answers``/``mc_scores`` per response (score None: dropped).
        """
        learnability = 0.0
        if proposal.valid:
            scores = [self._mc_score(proposal, task_type, response) for response in responses]
            kept = [score for score in scores if score is not None]
            proposal.mc_scores = scores
            proposal.mc_accuracy = sum(kept) / len(kept) if kept else 0.0
            learnability = (1 - proposal.mc_accuracy) if proposal.mc_accuracy > 0 else 0.0
        if proposal.format_score > 0:
            proposal.reward = learnability if learnability > 0 else -0.5
        else:
            proposal.reward = -1.0

    def _mc_score(self, proposal: RefProposal, task_type: str, response: str) -> float | None:
        task = proposal.task
        imports = list(set(task["imports"]))
        text = self._extract_answer(response, "answer_conditional", boxed_retry=False)
        with _quiet():
            if task_type == "induction":
                parsed, program = self._parse_code_function(text)
                proposal.mc_answers.append(program if parsed else None)
                if not parsed:
                    return 0.0
                half = len(task["inputs"]) // 2
                pairs = zip(task["inputs"][half:], task["outputs"][half:], strict=True)
                grades = [
                    self.executor.eval_input_prediction(
                        code=program, gold_output=out, agent_input=inp, imports=imports
                    )
                    for inp, out in pairs
                ]
                kept = [g for g in grades if g is not None]
                return 1.0 if kept and sum(kept) / len(kept) == 1.0 else 0.0
            abduction = task_type == "abduction"
            answer = self.manager.extract_input_output(text, return_input=abduction, return_output=not abduction)
            proposal.mc_answers.append(answer)
            # (the reference caches grades per answer text; grading is deterministic, so the cache changes nothing)
            if abduction:
                return self.executor.eval_input_prediction(
                    code=task["snippet"], gold_output=task["output"], agent_input=answer, imports=imports
                )
            return self.executor.eval_output_prediction(
                code=task["snippet"], gold_output=task["output"], agent_output=answer, imports=imports
            )


@contextlib.contextmanager
def _quiet():
    """The reference prints section headers and per-answer diagnostics; keep the benchmark's output readable."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


def default_reference_dir() -> str | None:
    """``AZR_REFERENCE_DIR`` from the environment, if set."""
    return os.environ.get("AZR_REFERENCE_DIR")
