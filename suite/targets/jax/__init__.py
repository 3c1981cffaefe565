"""The jax targets: the target contract (suite.targets.base) of every native jax target id."""
from suite.targets.jax.model import build, unsupported
from suite.targets.jax.train import build_train

__all__ = ["build", "build_train", "unsupported"]
