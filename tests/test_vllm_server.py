"""The server-failure policy (azr_trl.generation.vllm_server) on TRL's real `VLLMGeneration` and `VLLMClient`, against a local
HTTP stand-in of `trl vllm-serve` (tests/vllm_stand_in.py), without vLLM installed.

vLLM is absent here, so TRL's `is_vllm_available` checks are switched on for the two TRL modules, and the NCCL
weight-transfer calls (`init_communicator`, `update_named_params`: NCCL needs CUDA) are replaced by recorders. The
same policy runs against a real server, killed and restarted, in tests/vllm_engines/test_server.py (`make test-vllm`).
"""

from __future__ import annotations

import threading
import time

import pytest
import requests
from accelerate import Accelerator

from azr_trl.generation.vllm_server import ServerRetry, VLLMServerUnavailableError, guard_vllm_server, is_retryable

from tiny import make_tiny_model, make_tiny_tokenizer
from vllm_stand_in import VLLMServerStandIn


@pytest.fixture
def stand_in():
    server = VLLMServerStandIn(max_model_len=64).start()
    yield server
    server.stop()


@pytest.fixture
def generation(stand_in, monkeypatch):
    """TRL's server-mode `VLLMGeneration` on a tiny model, talking to the stand-in; NCCL calls recorded."""
    import trl.generation.vllm_client as vllm_client
    import trl.generation.vllm_generation as vllm_generation

    monkeypatch.setattr(vllm_client, "is_vllm_available", lambda *a, **k: True)
    monkeypatch.setattr(vllm_generation, "is_vllm_available", lambda *a, **k: True)

    def init_communicator(self, device=0):
        stand_in.events.append("init_communicator")

    def update_named_params(self, metadata, named_params):
        pushed = [name for name, _ in named_params]
        assert pushed == [name for name, _, _ in metadata]
        stand_in.events.append(f"update_named_params {len(pushed)}")

    monkeypatch.setattr(vllm_client.VLLMClient, "init_communicator", init_communicator)
    monkeypatch.setattr(vllm_client.VLLMClient, "update_named_params", update_named_params)
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
    events = stand_in.events[start:]
    assert events.count("POST /v1/completions 200") == 1
    # Every reconnection sets weight transfer up again and pushes all weights; the successful generation comes after
    # a complete push (init, every parameter, prefix-cache reset) on the server that answers it.
    last_init = max(i for i, e in enumerate(events) if e == "init_communicator")
    assert events[last_init:] == [
        "init_communicator",
        f"update_named_params {params}",
        "POST /reset_prefix_cache 200",
        "POST /v1/completions 200",
    ]
    assert {"POST /reset_prefix_cache 503", "POST /reset_prefix_cache 500"} <= set(events)
    assert policy.reconnects >= 1


def test_a_failed_weight_sync_is_redone_in_full_after_reconnecting(stand_in, generation):
    guard_vllm_server(generation, retry_seconds=60, max_interval=1.0)
    stand_in.fail_next = [503]  # the prefix-cache reset that closes a weight sync fails once
    start = len(stand_in.events)
    generation.sync_weights()
    events = [e for e in stand_in.events[start:] if e != "GET /health 200"]
    assert events[0].startswith("update_named_params")
    assert events[1] == "POST /reset_prefix_cache 503"
    assert events[2:] == ["init_communicator", events[0], "POST /reset_prefix_cache 200"]


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


def test_trainer_stops_with_a_resumable_checkpoint_when_the_server_is_gone(tmp_path, monkeypatch):
    """AZRTrainer in server mode on a tiny model: the stand-in goes away after step 1 for good; the run stops with the
    server's address and a checkpoint of step 1, which resumes once a server answers again."""
    import trl.generation.vllm_client as vllm_client
    import trl.generation.vllm_generation as vllm_generation
    import trl.trainer.grpo_trainer as grpo_trainer
    from transformers import TrainerCallback

    from azr_trl import AZRTrainer

    from scripts.tiny_azr_run import length_reward, tiny_config

    for module in (vllm_client, vllm_generation, grpo_trainer):
        monkeypatch.setattr(module, "is_vllm_available", lambda *a, **k: True, raising=False)
    monkeypatch.setattr(vllm_client.VLLMClient, "init_communicator", lambda self, device=0: None)
    monkeypatch.setattr(vllm_client.VLLMClient, "update_named_params", lambda self, metadata, params: list(params))
    server = VLLMServerStandIn(max_model_len=8192).start()

    class StopServerAfterStep1(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1:
                server.stop()

    def trainer(max_steps):
        config = tiny_config(
            str(tmp_path / "out"),
            max_steps=max_steps,
            use_vllm=True,
            vllm_mode="server",
            vllm_server_base_url=server.base_url,
            vllm_server_retry_seconds=2,
            vllm_server_retry_max_interval=0.5,
        )
        tokenizer = make_tiny_tokenizer()
        return AZRTrainer(
            make_tiny_model(tokenizer), args=config, processing_class=tokenizer, reward_funcs=[length_reward]
        )

    try:
        first = trainer(max_steps=3)
        first.add_callback(StopServerAfterStep1())
        with pytest.raises(VLLMServerUnavailableError) as stopped:
            first.train()
        first.close()
        checkpoint = tmp_path / "out" / "checkpoint-1"
        assert f"127.0.0.1:{server.port}" in str(stopped.value) and str(checkpoint) in str(stopped.value)
        assert (checkpoint / "azr_buffer.json").is_file()

        server.start()
        resumed = trainer(max_steps=2)
        resumed.train(resume_from_checkpoint=str(checkpoint))
        resumed.close()
        assert resumed.state.global_step == 2
    finally:
        server.stop()
