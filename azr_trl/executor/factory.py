"""``make_executor``: the one place that turns an :class:`ExecutorConfig` into a running backend.

It lives apart from ``base.py`` because it imports the backends, which import ``base.py``.
"""

from __future__ import annotations

from .base import Executor
from .local import LocalExecutor
from .sandbox_fusion import SandboxFusionExecutor
from .types import EXECUTOR_KINDS, ExecutorConfig


def make_executor(config: ExecutorConfig | None = None, **kwargs) -> Executor:
    """Build the backend ``config.backend`` names: ``"local"`` (fork-per-program sandbox) or ``"sandbox_fusion"``
    (HTTP server), with ``config`` as its limits.

    The backend's constructor gets ``config.backend_kwargs`` updated with ``kwargs`` (``LocalExecutor``:
    ``max_in_flight``, ``python``, ``tmp_dir``; ``SandboxFusionExecutor``: ``endpoint``, ``concurrency``,
    ``max_attempts``...).
    """
    if config is None:
        config = ExecutorConfig()
    if not isinstance(config, ExecutorConfig):
        raise TypeError(
            f"make_executor takes an ExecutorConfig (its `backend` field names the backend), got {config!r}"
        )
    options = {**config.backend_kwargs, **kwargs}
    if config.backend == "local":
        return LocalExecutor(config, **options)
    if config.backend == "sandbox_fusion":
        return SandboxFusionExecutor(config, **options)
    raise ValueError(f"unknown executor {config.backend!r}; choose one of {', '.join(EXECUTOR_KINDS)}")
