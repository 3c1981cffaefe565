"""The tensorflow targets: the target contract (suite.targets.base) of every native tensorflow target id."""
from suite.targets.tensorflow.model import build, build_train, unsupported

__all__ = ["build", "build_train", "unsupported"]
