"""Alternative burner reproducing the original incident (study.py --neighbour torch): another torch process,
2 OpenMP threads, default libgomp spin policy (env from parent, OMP_WAIT_POLICY/GOMP_SPINCOUNT removed),
running the CNN forever, unpinned. Runs until killed."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from models_def import torch_models  # noqa: E402


def main() -> None:
    import torch

    torch.set_num_threads(2)
    m, x = torch_models()["cnn_b1"]
    with torch.inference_mode():
        while True:
            m(x)


if __name__ == "__main__":
    main()
