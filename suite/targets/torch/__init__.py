"""The torch targets: the target contract (suite.targets.base) of every native torch target id."""
from suite.targets.torch.model import build, unsupported
from suite.targets.torch.train import build_train

__all__ = ["build", "build_train", "unsupported"]
