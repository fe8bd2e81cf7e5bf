"""Riding out a vLLM server that goes away mid-run (server mode).

A paper run lasts hundreds of steps; a server restart or a dropped connection must not end it. TRL's `VLLMClient`
is kept as it is; on the main process, `guard_vllm_server` wraps the client calls the trainer makes (generation,
weight pushes, prefix-cache resets) with one wait-and-retry policy:

- connection errors, timeouts and HTTP 5xx are retried with exponential backoff, each wait logged, until the server
  has been unreachable for `retry_seconds`; any other error (HTTP 400 for a prompt that is too long, ...) is raised at
  once;
- once the server answers its health check again, the trainer tells a restart from a passing error by the server's
  identity (the `instance_id` its `/server_info` reports, set when the server starts; without one, whether a health
  check failed in between). A restarted server holds the base weights: weight transfer is set up again
  (`init_communicator`) and the current weights are pushed before the call is retried, so generation never continues
  on weights older than the trainer's. A server that stayed up keeps its weight-transfer group: the failed call is
  simply made again (a failed push pushes all weights again);
- past the limit, `VLLMServerUnavailableError` names the server; the trainer saves a checkpoint before stopping.

Every call that broadcasts over NCCL (a push, joining the group) also runs under the `PushWatchdog`, since NCCL
waits for ever on a server that died mid-push. The client's own urllib3 retries (silent, up to a minute of sleeps)
are turned off so that every wait is logged here.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from .push_watchdog import PushWatchdog


logger = logging.getLogger(__name__)

# TRL's client raises a bare `Exception("Request failed: <status>, <body>")` for non-200 replies.
_FAILED_REQUEST = re.compile(r"Request failed: (\d{3})")


class VLLMServerUnavailableError(RuntimeError):
    """The vLLM server stayed unreachable (or kept answering 5xx) for longer than the configured limit."""


def is_retryable(error: BaseException) -> bool:
    """Whether ``error`` means the server is (perhaps briefly) unavailable: connection errors, timeouts, HTTP 5xx."""
    import requests

    if isinstance(error, requests.exceptions.RetryError):
        return True  # the session's own retries on 5xx ran out
    if isinstance(error, requests.exceptions.HTTPError):
        return error.response is not None and error.response.status_code >= 500
    if isinstance(error, requests.exceptions.RequestException | ConnectionError | TimeoutError):
        return True
    match = _FAILED_REQUEST.search(str(error)) if type(error) is Exception else None
    return match is not None and int(match.group(1)) >= 500


def server_address(base_url: str) -> str:
    """``host:port`` of a server URL, as the messages name it."""
    parsed = urlparse(base_url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return f"{parsed.hostname}:{port}"


class ServerRetry:
    """Wait-and-retry policy for calls to one vLLM server.

    Args:
        base_url: the server's URL (named in log lines and in the final error).
        retry_seconds: how long the server may stay unavailable, counted from the first failure of a call.
        reconnect: called once a restarted server answers again, before the failed call is retried (re-initialises
            weight transfer and pushes the current weights). Its own failures are retried too.
        health: returns whether the server's `/health` answers 200 (exceptions count as no).
        identity: the server instance's identity, or None when it cannot tell; a new one means a restart.
        initial_interval, max_interval: the backoff between attempts doubles from the first to the second.
    """

    def __init__(
        self,
        base_url: str,
        retry_seconds: float,
        reconnect: Callable[[], None],
        health: Callable[[], bool],
        identity: Callable[[], str | None] = lambda: None,
        initial_interval: float = 1.0,
        max_interval: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.address = server_address(base_url)
        self.retry_seconds = retry_seconds
        self.reconnect = reconnect
        self.health = health
        self.identity = identity
        self.initial_interval = initial_interval
        self.max_interval = max_interval
        self._sleep = sleep
        self._clock = clock
        self.known_identity = identity()
        self.reconnects = 0  # restarts handled
        self.retries = 0  # passing errors ridden out on the same server

    def call(self, fn: Callable[[], Any], what: str, again: Callable[[], Any] | None = None) -> Any:
        """Run ``fn``; on a retryable failure wait for the server, then run it again.

        On a restarted server, ``reconnect`` comes first, and then ``fn`` unless ``again`` is given: a weight push or
        a prefix-cache reset is what the reconnection itself redoes. On a server that stayed up, ``again`` (default
        ``fn``) is run: a push whose iterator is spent pushes everything anew.
        """
        try:
            return fn()
        except Exception as error:  # noqa: BLE001 - classified below, re-raised when not retryable
            if not is_retryable(error):
                raise
            first_error = error
        start = self._clock()
        interval = self.initial_interval
        logger.warning(
            "vLLM server %s unavailable during %s (%s); waiting up to %.0f s for it to come back.",
            self.address,
            what,
            _short(first_error),
            self.retry_seconds,
        )
        last_error: BaseException = first_error
        went_down = False
        while True:
            elapsed = self._clock() - start
            if elapsed >= self.retry_seconds:
                raise VLLMServerUnavailableError(
                    f"The vLLM server at {self.address} has been unavailable for {elapsed:.0f} s during {what} "
                    f"(limit vllm_server_retry_seconds={self.retry_seconds:g}); last error: {_short(last_error)}. "
                    f"Restart the server (`trl vllm-serve ...`) and resume the run from its last checkpoint."
                ) from last_error
            wait = min(interval, self.max_interval, max(self.retry_seconds - elapsed, 0.0))
            logger.warning(
                "vLLM server %s: retrying in %.1f s (%.0f/%.0f s waited).",
                self.address,
                wait,
                elapsed,
                self.retry_seconds,
            )
            self._sleep(wait)
            interval = min(interval * 2, self.max_interval)
            if not self.health():
                went_down = True
                continue
            try:
                if self._restarted(went_down):
                    logger.warning(
                        "vLLM server %s restarted: setting up weight transfer again and pushing the current weights.",
                        self.address,
                    )
                    self.reconnect()
                    self.known_identity = self.identity()
                    self.reconnects += 1
                    result = fn() if again is None else None
                else:
                    logger.warning(
                        "vLLM server %s answers again and did not restart: retrying %s on the same weight-transfer "
                        "group.",
                        self.address,
                        what,
                    )
                    result = (again or fn)()
                    self.retries += 1
            except Exception as error:  # noqa: BLE001
                if not is_retryable(error):
                    raise
                last_error = error
                logger.warning("vLLM server %s failed again (%s).", self.address, _short(error))
                continue
            logger.warning("vLLM server %s: %s succeeded after %.0f s.", self.address, what, self._clock() - start)
            return result

    def _restarted(self, went_down: bool) -> bool:
        """Whether the server now answering is a new instance: its identity changed, or (identity unknown) its
        health check failed while waiting."""
        current = self.identity()
        if current is None or self.known_identity is None:
            return went_down
        return current != self.known_identity


def guard_vllm_server(
    vllm_generation, retry_seconds: float, max_interval: float = 30.0, watchdog: PushWatchdog | None = None
) -> ServerRetry | None:
    """Wrap the main process's `VLLMClient` of a server-mode `VLLMGeneration` with a `ServerRetry`, and its NCCL
    calls with ``watchdog``.

    Returns the policy (None on processes that hold no client). The weights are pushed again after a failure through
    TRL's own `_iter_named_params`, which the main process can walk alone only when it holds whole parameters (no
    ZeRO-3/FSDP sharding across several processes).
    """
    client = getattr(vllm_generation, "vllm_client", None)
    if client is None:
        return None
    _disable_silent_retries(client)
    accelerator = vllm_generation.accelerator
    sharded = accelerator.num_processes > 1 and (
        getattr(vllm_generation._dist, "is_fsdp", False) or _is_zero3(accelerator)
    )
    address = server_address(client.base_url)
    guard = watchdog.guard if watchdog is not None else lambda what: contextlib.nullcontext()
    raw_init = client.init_communicator
    raw_update = client.update_named_params
    raw_reset = client.reset_prefix_cache

    def update_named_params(metadata, named_params):
        with guard(f"the weight push of {len(metadata)} tensors to the vLLM server at {address} (NCCL broadcast)"):
            return raw_update(metadata, named_params)

    def init_communicator(device=0):
        with guard(f"joining the weight-transfer group of the vLLM server at {address} (NCCL rendezvous)"):
            return raw_init(device=device)

    def push_current_weights() -> None:
        if sharded:
            raise VLLMServerUnavailableError(
                f"A weight push to the vLLM server at {address} failed, and the training weights are sharded across "
                "processes (ZeRO-3/FSDP): the main process cannot push them again alone in the middle of a step. "
                "Resume the run from its last checkpoint."
            )
        params = list(vllm_generation._iter_named_params())
        metadata = [(name, str(p.dtype).removeprefix("torch."), list(p.shape)) for name, p in params]
        update_named_params(metadata, iter(params))

    def reconnect() -> None:
        client.close_communicator()
        init_communicator(device=accelerator.device)
        push_current_weights()
        raw_reset()

    def health() -> bool:
        try:
            return client.session.get(f"{client.base_url}/health", timeout=10).status_code == 200
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            return False

    def identity() -> str | None:
        try:
            return str(client.get_server_info()["instance_id"])
        except Exception:  # noqa: BLE001 - no identity: restarts are told by failed health checks
            return None

    policy = ServerRetry(client.base_url, retry_seconds, reconnect, health, identity, max_interval=max_interval)
    raw_generate = client.generate

    def generate(*args, **kwargs):
        return policy.call(lambda: raw_generate(*args, **kwargs), "generation")

    def guarded_update(metadata, named_params):
        # A failed push cannot be resumed half-way (the iterator is spent): all weights go again.
        return policy.call(lambda: update_named_params(metadata, named_params), "weight push", push_current_weights)

    def reset_prefix_cache():
        return policy.call(raw_reset, "prefix-cache reset", raw_reset)

    client.generate = generate
    client.init_communicator = init_communicator
    client.update_named_params = guarded_update
    client.reset_prefix_cache = reset_prefix_cache
    return policy


def _disable_silent_retries(client) -> None:
    from requests.adapters import HTTPAdapter

    pool = client.session.get_adapter(client.base_url)._pool_maxsize
    adapter = HTTPAdapter(max_retries=0, pool_maxsize=pool)
    client.session.mount("http://", adapter)
    client.session.mount("https://", adapter)


def _is_zero3(accelerator) -> bool:
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    return plugin is not None and plugin.zero_stage == 3


def _short(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= 300 else text[:297] + "..."
