"""Shared model shapes. MLP 784->256->256->10 (ReLU); CNN on 1x3x64x64:
conv3x3(3->16,p1) relu, conv3x3(16->32,s2,p1) relu, conv3x3(32->32,p1) relu, global-avg-pool, linear 32->10."""
from __future__ import annotations

MLP_DIMS = [784, 256, 256, 10]
CNN_IN = (1, 3, 64, 64)
WORKLOADS = ["mlp_b1", "mlp_b32", "cnn_b1"]


def torch_models():
    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)).eval()
    cnn = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10)).eval()
    return {"mlp_b1": (mlp, torch.randn(1, 784)), "mlp_b32": (mlp, torch.randn(32, 784)),
            "cnn_b1": (cnn, torch.randn(*CNN_IN))}
