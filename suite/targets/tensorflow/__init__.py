"""The tensorflow targets: the target contract (suite.targets.base) of every native tensorflow target id."""
from suite.targets.tensorflow.model import build, unsupported
from suite.targets.tensorflow.train import build_train

__all__ = ["build", "build_train", "unsupported"]
