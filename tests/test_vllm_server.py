"""The server-failure policy (azr_trl.generation.vllm_server) on TRL's real `VLLMGeneration` and `VLLMClient`, against a local
HTTP stand-in of `trl vllm-serve` (tests/vllm_stand_in.py), without vLLM installed.

vLLM is absent here, so TRL's `is_vllm_available` checks are switched on for the two TRL modules. The NCCL parts of
weight transfer cannot run (NCCL needs CUDA): `init_communicator` is replaced by a recorder, and inside TRL's own
`update_named_params` (its HTTP requests run for real) the NCCL broadcast is replaced by a stand-in that, like NCCL,
completes only once the server takes part (tests/vllm_stand_in.py). The same policy runs against a real server,
killed and restarted, in tests/vllm_engines/test_server.py (`make test-vllm`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from accelerate import Accelerator

from azr_trl.generation.push_watchdog import EXIT_CODE
from azr_trl.generation.vllm_server import ServerRetry, VLLMServerUnavailableError, guard_vllm_server, is_retryable

from tiny import make_tiny_model, make_tiny_tokenizer
from vllm_stand_in import VLLMServerStandIn, use_stand_ins_for_nccl


SCRIPTS = Path(__file__).parent / "scripts"


@pytest.fixture
def stand_in():
    server = VLLMServerStandIn(max_model_len=64).start()
    yield server
    server.stop()


@pytest.fixture
def generation(stand_in, monkeypatch):
    """TRL's server-mode `VLLMGeneration` on a tiny model, talking to the stand-in."""
    import trl.generation.vllm_generation as vllm_generation

    use_stand_ins_for_nccl(monkeypatch, stand_in)
    tokenizer = make_tiny_tokenizer()
    model = make_tiny_model(tokenizer)
    return vllm_generation.VLLMGeneration(
        model,
        Accelerator(cpu=True),
        tokenizer,
        mode="server",
        server_base_url=stand_in.base_url,
        server_timeout=5,
        max_completion_length=4,
    )


def _posts(events: list[str]) -> list[str]:
    """The events that change the server or the weights: POSTs, NCCL joins and broadcasts (health and identity
    checks left out)."""
    return [e for e in events if not e.startswith("GET ")]


PUSH = ["POST /start_weight_update 200", "POST /update_weights 200", "POST /finish_weight_update 200"]


def _is_push(events: list[str], params: int) -> bool:
    """Whether ``events`` are exactly one complete weight push (the broadcast and the HTTP reply race each other)."""
    return sorted(events) == sorted([*PUSH, f"broadcast {params}"]) and events[0] == PUSH[0] and events[-1] == PUSH[-1]


def _restart_later(server: VLLMServerStandIn, delay: float, fail_next: list[int]) -> threading.Thread:
    def restart():
        time.sleep(delay)
        server.fail_next = list(fail_next)
        server.start()

    thread = threading.Thread(target=restart)
    thread.start()
    return thread


def test_generation_waits_for_a_restarted_server_and_pushes_the_weights_before_generating(stand_in, generation):
    policy = guard_vllm_server(generation, retry_seconds=60, max_interval=1.0)
    params = len(list(generation.model.named_parameters()))
    stand_in.stop()  # connection refused from now on
    restart = _restart_later(stand_in, delay=1.5, fail_next=[503, 500])  # back, but answers 5xx twice first
    start = len(stand_in.events)
    _, completion_ids, logprobs, _ = generation.generate([[5, 6, 7]] * 2, images=None, num_generations=2)
    restart.join()

    assert [len(c) for c in completion_ids] == [4, 4]
    assert len(logprobs) == 2
    events = _posts(stand_in.events[start:])
    assert events.count("POST /v1/completions 200") == 1
    # A new instance: weight transfer is set up again and all weights pushed. The first two attempts fail on the
    # 5xx answers and are made again in full; the successful generation comes after a complete push (init, every
    # parameter, prefix-cache reset) on the server that answers it.
    assert events.count("init_communicator") == 3
    last_init = max(i for i, e in enumerate(events) if e == "init_communicator")
    assert _is_push(events[last_init + 1 : last_init + 5], params)
    assert events[last_init + 5 :] == ["POST /reset_prefix_cache 200", "POST /v1/completions 200"]
    assert policy.reconnects == 1 and policy.retries == 0


def test_a_passing_error_is_retried_without_setting_up_weight_transfer_again(stand_in, generation):
    """The same server instance answering 5xx for a while keeps its weight-transfer group: a failed generation or
    prefix-cache reset is made again, a failed push pushes all weights again; nothing is re-initialised."""
    policy = guard_vllm_server(generation, retry_seconds=60, max_interval=1.0)
    params = len(list(generation.model.named_parameters()))
    start = len(stand_in.events)
    stand_in.fail_next = [503]
    generation.generate([[5, 6, 7]], images=None, num_generations=1)
    assert _posts(stand_in.events[start:]) == ["POST /v1/completions 503", "POST /v1/completions 200"]

    start = len(stand_in.events)
    stand_in.fail_next = [503]  # the push's first request fails: the whole push is made again
    generation.sync_weights()
    events = _posts(stand_in.events[start:])
    assert events[0] == "POST /start_weight_update 503"
    assert _is_push(events[1:5], params)
    assert events[5:] == ["POST /reset_prefix_cache 200"]

    start = len(stand_in.events)
    stand_in.fail_next = [500]
    generation.vllm_client.reset_prefix_cache()
    assert _posts(stand_in.events[start:]) == ["POST /reset_prefix_cache 500", "POST /reset_prefix_cache 200"]
    assert stand_in.events.count("init_communicator") == 1  # TRL's own, when the client connected
    assert policy.reconnects == 0 and policy.retries == 3


@pytest.mark.parametrize("restarted", [True, False], ids=["new-instance", "same-instance"])
def test_a_restart_is_told_by_the_servers_instance_id(stand_in, generation, restarted):
    """The server answers its health check throughout; only its identity (`/server_info`'s instance_id, new at
    every start) says whether the failure was a restart, which needs weight transfer set up again."""
    policy = guard_vllm_server(generation, retry_seconds=60, max_interval=1.0)
    stand_in.fail_next = [503]
    if restarted:
        stand_in.instance_id = "a-new-instance"
    start = len(stand_in.events)
    generation.generate([[5, 6, 7]], images=None, num_generations=1)
    events = _posts(stand_in.events[start:])
    assert ("init_communicator" in events) is restarted
    assert (policy.reconnects, policy.retries) == ((1, 0) if restarted else (0, 1))
    assert events[-1] == "POST /v1/completions 200"


def test_a_prompt_the_server_rejects_is_not_retried(stand_in, generation):
    policy = guard_vllm_server(generation, retry_seconds=60)
    start = time.monotonic()
    with pytest.raises(Exception, match="Request failed: 400.*maximum context length is 64"):
        generation.generate([list(range(62))], images=None, num_generations=1)
    assert time.monotonic() - start < 5
    assert policy.reconnects == 0


def test_a_server_gone_for_good_stops_with_its_address(stand_in, generation):
    guard_vllm_server(generation, retry_seconds=2, max_interval=0.5)
    stand_in.stop()
    start = time.monotonic()
    with pytest.raises(VLLMServerUnavailableError, match=f"127.0.0.1:{stand_in.port}.*vllm_server_retry_seconds=2"):
        generation.generate([[5, 6, 7]], images=None, num_generations=1)
    assert 2 <= time.monotonic() - start < 10


def test_retry_policy_backs_off_and_gives_up_at_the_limit():
    clock = [0.0]
    sleeps: list[float] = []

    def sleep(seconds):
        sleeps.append(seconds)
        clock[0] += seconds

    def refuse():
        raise requests.exceptions.ConnectionError("refused")

    policy = ServerRetry(
        "http://10.1.2.3:8000", 20, reconnect=lambda: None, health=lambda: False, sleep=sleep, clock=lambda: clock[0]
    )
    with pytest.raises(VLLMServerUnavailableError, match="10.1.2.3:8000"):
        policy.call(refuse, "generation")
    assert sleeps == [1, 2, 4, 8, 5]  # doubling, the last wait cut to the limit


def test_which_errors_are_retried():
    assert is_retryable(requests.exceptions.ConnectionError())
    assert is_retryable(requests.exceptions.ReadTimeout())
    assert is_retryable(Exception("Request failed: 503, busy"))
    assert not is_retryable(Exception("Request failed: 400, too long"))
    assert not is_retryable(ValueError("Request failed: 500"))  # only TRL's bare Exception carries a status
    assert not is_retryable(RuntimeError("no weight-transfer engine"))


def _server_trainer(output_dir, server, **overrides):
    """AZRTrainer in server mode on the tiny model, talking to the stand-in."""
    from azr_trl import AZRTrainer

    from scripts.tiny_azr_run import length_reward, tiny_config

    settings = dict(vllm_server_retry_seconds=2, vllm_server_retry_max_interval=0.5)
    config = tiny_config(
        str(output_dir),
        use_vllm=True,
        vllm_mode="server",
        vllm_server_base_url=server.base_url,
        **settings | overrides,
    )
    tokenizer = make_tiny_tokenizer()
    return AZRTrainer(
        make_tiny_model(tokenizer), args=config, processing_class=tokenizer, reward_funcs=[length_reward]
    )


def test_trainer_stops_with_a_resumable_checkpoint_when_the_server_is_gone(tmp_path, monkeypatch):
    """AZRTrainer in server mode on a tiny model: the stand-in goes away after step 1 for good; the run stops with the
    server's address and a checkpoint of step 1, which resumes once a server answers again."""
    from transformers import TrainerCallback

    server = VLLMServerStandIn(max_model_len=8192).start()
    use_stand_ins_for_nccl(monkeypatch, server)

    class StopServerAfterStep1(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1:
                server.stop()

    try:
        first = _server_trainer(tmp_path / "out", server, max_steps=3)
        first.add_callback(StopServerAfterStep1())
        with pytest.raises(VLLMServerUnavailableError) as stopped:
            first.train()
        first.close()
        checkpoint = tmp_path / "out" / "checkpoint-1"
        assert f"127.0.0.1:{server.port}" in str(stopped.value) and str(checkpoint) in str(stopped.value)
        assert (checkpoint / "azr_buffer.json").is_file()

        server.start()
        resumed = _server_trainer(tmp_path / "out", server, max_steps=2)
        resumed.train(resume_from_checkpoint=str(checkpoint))
        resumed.close()
        assert resumed.state.global_step == 2
    finally:
        server.stop()


def test_seeding_stopped_by_an_outage_writes_no_checkpoint_and_seeds_on_after_a_restart(tmp_path, monkeypatch):
    """The stand-in goes away for good after the second seeding round: the run stops without a checkpoint (whose
    buffer would hold none of the seeds), and the restart in the same output_dir seeds on from the seed file. The same
    against the real server: tests/vllm_engines/test_server.py."""
    from transformers.trainer_utils import get_last_checkpoint

    from azr_trl.seeding.generation import SEED_TASKS_FILE

    from scripts.tiny_azr_run import script_server_proposals

    server = VLLMServerStandIn(max_model_len=8192).start()
    use_stand_ins_for_nccl(monkeypatch, server)
    out = tmp_path / "out"
    seeding = dict(seed_num_tasks=6, seed_num_induction=0, save_strategy="steps", save_steps=1, max_steps=1)
    requests_made = script_server_proposals(
        monkeypatch, make_tiny_tokenizer(), lambda n: server.stop() if n == 2 else None
    )
    try:
        first = _server_trainer(out, server, **seeding)
        with pytest.raises(VLLMServerUnavailableError) as stopped:
            first.train()
        first.close()
        seed_file = out / SEED_TASKS_FILE
        kept = seed_file.read_text().splitlines()
        assert len(requests_made) == 2 and len(kept) == 4  # 2 rounds of 2 proposals, written as they came
        message = str(stopped.value)
        assert "seeding phase had not finished, so no checkpoint was written" in message and str(seed_file) in message
        assert get_last_checkpoint(str(out)) is None  # nothing for the automatic resume to take

        server.start()
        restarted = _server_trainer(out, server, **seeding)
        restarted.train()
        restarted.close()
        (entry,) = [e for e in restarted.state.log_history if "azr/seeding/tasks/count" in e]
        assert entry["azr/seeding/tasks/count"] == 6 and entry["azr/seeding/tasks/added"] == 2
        assert seed_file.read_text().splitlines()[:4] == kept
        assert restarted.state.global_step == 1 and get_last_checkpoint(str(out)).endswith("checkpoint-1")
    finally:
        server.stop()


def test_a_weight_push_that_never_returns_ends_the_process_naming_its_checkpoint(tmp_path):
    """The server dies in the middle of the step-2 push; the NCCL broadcast (a stand-in that, like NCCL, waits for
    ever for its receiver) never returns. The watchdog logs what it was doing and the checkpoint to resume from, and
    ends the process with EX_TEMPFAIL so that a scheduler restarts it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "push_watchdog_run.py"), str(tmp_path), "3"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == EXIT_CODE, result.stderr[-3000:]
    log = result.stderr
    assert "The weight push of" in log and "(NCCL broadcast) has not returned after 3 s" in log
    assert "vllm_weight_push_timeout=3" in log and f"exit status {EXIT_CODE}" in log
    assert f"The run was at step 1; its last checkpoint is {tmp_path / 'checkpoint-1'}" in log
    assert (tmp_path / "checkpoint-1" / "azr_buffer.json").is_file()
    assert time.monotonic() - start < 300


def test_monte_carlo_padding_costs_the_server_nothing(tmp_path, monkeypatch):
    """A rank with fewer valid proposals than another pads its Monte-Carlo call to the same size (the server gathers
    every rank's prompts and slices the answers by equal counts); the padding never reaches the server, and the
    padded count is logged. The other rank is simulated by the count gather of the Monte-Carlo phase."""
    import azr_trl.azr_trainer as trainer_module
    from azr_trl.tasks import Task

    server = VLLMServerStandIn(max_model_len=8192).start()
    use_stand_ins_for_nccl(monkeypatch, server)
    trainer = _server_trainer(tmp_path, server)
    try:
        task = Task("deduction", "def f(x):\n    return x + 1\n", "1", "2")
        n = trainer.args.mc_rollouts
        monkeypatch.setattr(trainer_module, "gather_object", lambda counts: [counts[0], counts[0] + 3])
        rates = trainer._monte_carlo_solve_rates([task, None])
        assert rates[1] is None and 0.0 <= rates[0] <= 1.0
        (request,) = server.completion_requests
        assert len(request["prompt"]) == 1 and request["n"] == n  # the real task only: 3 tasks of padding left out
        assert trainer._metrics["train"]["azr/monte_carlo/padded_tasks"] == [3.0]
        # A rank without a valid proposal still makes the call, all padding: no request reaches the server.
        monkeypatch.setattr(trainer_module, "gather_object", lambda counts: [counts[0], 2])
        assert trainer._monte_carlo_solve_rates([None]) == [None]
        assert len(server.completion_requests) == 1
        assert trainer._metrics["train"]["azr/monte_carlo/padded_tasks"] == [3.0, 2.0]
    finally:
        trainer.close()
        server.stop()


def test_evaluation_during_training_goes_through_the_vllm_engine(tmp_path, monkeypatch):
    """eval_benchmarks with vLLM: the answers come from the server (greedy, eval_max_new_tokens), on the weights of
    the step just taken; HF generate, which would gather the whole model on a training GPU under ZeRO-3, never runs."""
    server = VLLMServerStandIn(max_model_len=8192).start()
    use_stand_ins_for_nccl(monkeypatch, server)
    crux = Path(__file__).parent / "data" / "eval" / "cruxeval_tiny.jsonl"
    trainer = _server_trainer(
        tmp_path,
        server,
        max_steps=1,
        eval_benchmarks=["cruxeval_o"],
        eval_benchmark_file=str(crux),
        eval_num_items=3,
        eval_steps=1,
        eval_max_new_tokens=5,
    )
    model = trainer.accelerator.unwrap_model(trainer.model)
    monkeypatch.setattr(model, "generate", lambda *a, **k: pytest.fail("evaluation must not use HF generate"))
    try:
        trainer.train()
    finally:
        trainer.close()
        server.stop()
    assert any("eval/cruxeval_o/accuracy" in row for row in trainer.state.log_history)
    evaluation = server.completion_requests[-1]
    assert (evaluation["temperature"], evaluation["max_tokens"], len(evaluation["prompt"])) == (0.0, 5, 3)
    assert all(r["temperature"] == trainer.args.temperature for r in server.completion_requests[:-1])
    # The step's weights were pushed (a second broadcast, after training step 1's) before the evaluation request.
    events = server.events
    last_request = max(i for i, e in enumerate(events) if e == "POST /v1/completions 200")
    assert sum(e.startswith("broadcast") for e in events[:last_request]) == 2
