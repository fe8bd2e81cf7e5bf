"""A watchdog on the weight pushes to a vLLM server: a push that never returns ends the process instead of hanging.

TRL's `VLLMClient.update_named_params` broadcasts the weights over NCCL before it waits for the server's HTTP reply,
and `init_communicator` joins an NCCL rendezvous; NCCL has no timeout. A server that dies mid-push leaves the trainer
blocked in the broadcast for ever, holding its GPUs, with nothing in the log. Every such call runs under
:meth:`PushWatchdog.guard`: past ``timeout`` seconds a timer thread logs what was being pushed, how long it has waited
and the checkpoint to resume from, and ends the process with ``EXIT_CODE`` (``EX_TEMPFAIL``: try again) so that a
cluster scheduler restarts it. NCCL's waits and the HTTP wait release the GIL, so the timer thread runs meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator


logger = logging.getLogger(__name__)

EXIT_CODE = 75  # EX_TEMPFAIL (sysexits.h): a temporary failure, the run may be restarted


class PushWatchdog:
    """Ends the process when a guarded call outlasts ``timeout`` seconds.

    Args:
        timeout: seconds a push may take (well above a normal one).
        resume_hint: called when the watchdog fires; says where the run stands and what to resume from.
        exit: ends the process (``os._exit``: the blocked thread cannot be unwound, and atexit handlers could block
            on the same NCCL group).
    """

    def __init__(self, timeout: float, resume_hint: Callable[[], str], exit: Callable[[int], None] = os._exit) -> None:
        self.timeout = timeout
        self.resume_hint = resume_hint
        self._exit = exit

    @contextlib.contextmanager
    def guard(self, what: str) -> Iterator[None]:
        """Run the block; end the process if it has not returned after ``timeout`` seconds."""
        timer = threading.Timer(self.timeout, self._expire, args=(what, time.monotonic()))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def _expire(self, what: str, started: float) -> None:
        logger.critical(
            "%s has not returned after %.0f s (limit vllm_weight_push_timeout=%g): the vLLM server most likely died "
            "mid-push, and NCCL waits for ever. %s Ending this process with exit status %d so that it can be "
            "restarted.",
            what[:1].upper() + what[1:],
            time.monotonic() - started,
            self.timeout,
            self.resume_hint(),
            EXIT_CODE,
        )
        for handler in logging.getLogger().handlers + logger.handlers:
            handler.flush()
        self._exit(EXIT_CODE)
