"""azr-trl: Absolute Zero self-play (propose, validate, solve) on Hugging Face TRL."""

__version__ = "0.1.0"

__all__ = ["AZRConfig", "AZRTrainer", "__version__"]


def __getattr__(name: str):
    # Lazy so that `azr-trl --help` and the executor's child side never import torch/TRL.
    if name == "AZRConfig":
        from .azr_config import AZRConfig

        return AZRConfig
    if name == "AZRTrainer":
        from .azr_trainer import AZRTrainer

        return AZRTrainer
    raise AttributeError(f"module 'azr_trl' has no attribute {name!r}")
