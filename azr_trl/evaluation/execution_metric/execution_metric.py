"""azr-trl's execution metric for `evaluate`: pass@k of candidate programs, run in azr-trl's sandboxed executor.

Load it from the installed package, offline::

    import evaluate
    from azr_trl.evaluation.scoring import EXECUTION_METRIC_DIR

    metric = evaluate.load(str(EXECUTION_METRIC_DIR))
    pass_at_k, results = metric.compute(predictions=[["def add(a, b):\n    return a + b"]],
                                        references=["assert add(2, 3) == 5"], k=[1])

It answers like ``code_eval``, but no candidate ever runs in the evaluating process: each one runs in a forked,
resource-limited sandbox (no network, no file writes, no subprocesses, a CPU and wall-clock limit), so a program that
loops, crashes or attacks its parent costs only its own score.
"""

import datasets
import evaluate


_DESCRIPTION = """
Runs candidate programs against test code in azr-trl's sandboxed executor and reports the unbiased pass@k estimator
(Chen et al., 2021). A drop-in for `code_eval` without running model-written code in the evaluating process.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: a list of candidate lists, one list of program strings per problem.
    references: one reference per problem: test code run after the candidate (it passes when the code runs to the end
        without raising, as in `code_eval`: e.g. asserts, or `def check(f): ...` followed by `check(entry_point)`), or
        a JSON object with the fields of `azr_trl.evaluation.registry.CodeGenItem` (`test_style` `check`, `script`,
        `stdin` or `functional`, with `test`, `entry_point`, `starter_code`, `test_cases`).
    k: the k values of pass@k (default [1, 10, 100]); a k is reported when every problem has at least k candidates.
    executor_config: an `azr_trl.executor.ExecutorConfig`: the backend and its limits (timeout per candidate,
        workers, memory...); default: `ExecutorConfig()`. The size cap on programs is lifted for test programs.
    timeout, num_workers: `code_eval`'s names: when given, they replace the config's `timeout` (wall-clock seconds
        per candidate) and `workers` (candidates in flight at once).
    executor: an open azr-trl executor to use instead of building one (it is not closed).
Returns:
    pass_at_k: {"pass@k": score in [0, 1]} for every reported k.
    results: {problem index: [(candidate index, {"task_id", "completion_id", "passed", "result", "verdict",
        "error"}), ...]}, where "verdict" is the executor's (ok, timeout, runtime_error, memory, crashed, ...).
Examples:
    >>> metric = evaluate.load(str(EXECUTION_METRIC_DIR))
    >>> pass_at_k, _ = metric.compute(predictions=[["def f(x):\\n    return x * 2", "def f(x):\\n    while True: pass"]],
    ...                               references=["assert f(2) == 4"], k=[1, 2], timeout=2)
    >>> pass_at_k
    {'pass@1': 0.5, 'pass@2': 1.0}
"""

_CITATION = """
@article{chen2021codex,
    title   = {Evaluating Large Language Models Trained on Code},
    author  = {Mark Chen and Jerry Tworek and Heewoo Jun and others},
    year    = {2021},
    eprint  = {2107.03374},
    archivePrefix = {arXiv},
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ExecutionMetric(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("string")), "references": datasets.Value("string")}
            ),
            reference_urls=["https://arxiv.org/abs/2107.03374"],
        )

    def _compute(
        self,
        predictions,
        references,
        k=(1, 10, 100),
        executor_config=None,
        timeout=None,
        num_workers=None,
        executor=None,
    ):
        from dataclasses import replace

        from azr_trl.evaluation.metrics import mean_pass_at_k
        from azr_trl.evaluation.scoring import execute_candidates, make_benchmark_executor, reference_item
        from azr_trl.executor import ExecutorConfig

        own = executor is None
        if own:
            config = executor_config or ExecutorConfig()
            if timeout is not None:
                config = replace(config, timeout=timeout)
            if num_workers is not None:
                config = replace(config, workers=num_workers)
            executor = make_benchmark_executor(config)
        try:
            outcomes = execute_candidates(predictions, [reference_item(r) for r in references], executor)
        finally:
            if own:
                executor.close()
        results = {
            task_id: [
                (
                    completion_id,
                    {
                        "task_id": task_id,
                        "completion_id": completion_id,
                        "passed": outcome["passed"],
                        "result": "passed" if outcome["passed"] else f"failed: {outcome['verdict']}",
                        "verdict": outcome["verdict"],
                        "error": outcome["error"],
                    },
                )
                for completion_id, outcome in enumerate(problem)
            ]
            for task_id, problem in enumerate(outcomes)
        }
        passed = [[o["passed"] for o in problem] for problem in outcomes]
        scores = {}
        for value in [k] if isinstance(k, int) else k:
            if passed and all(len(flags) >= value for flags in passed):
                scores[f"pass@{value}"] = mean_pass_at_k(passed, value)
        return scores, results
