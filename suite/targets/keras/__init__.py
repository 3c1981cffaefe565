"""The keras targets: the target contract (suite.targets.base) of every native keras target id."""
from suite.targets.keras.model import build, unsupported
from suite.targets.keras.train import build_train

__all__ = ["build", "build_train", "unsupported"]
