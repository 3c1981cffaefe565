"""Benchmark (run by hand; prints figures, asserts nothing): is ``torch:eager`` PyTorch's own speed?

The suite's torch model has a generated straight-line ``forward`` (suite/targets/torch/model.py). This
times, in one process, side by side (short blocks of calls, the three forms one after the other in each
round, many rounds), the same module objects:

* ``hand``: the same layer modules (the very objects, so the same weights) in a hand-written
  ``nn.Sequential``, which is how a user would write these chain-shaped workloads;
* ``suite``: the suite's generated module, as ``torch:eager`` runs it (inference_mode);
* ``walk``: the previous design, a forward that walks the graph in a Python loop with a dict of values,

and prints the medians and the ratios suite/hand and walk/hand: the median of the per-round ratios. A
round's blocks run within tens of milliseconds of each other, so the ratio holds when the host's speed
drifts between rounds (a shared VM's CPU moved medians by up to 2x between seconds on the machine this
was written on; ratios of whole-second runs then ranged 0.64..1.62).

    .venv/bin/python tests/benchmarks/torch_native_speed.py [--threads 1] [--pairs 300] [--block-ms 20]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

CASES = [("mlp_classifier", 32), ("mlp_classifier", 1), ("mobilenet_cnn", 1)]  # chain-shaped workloads


def models(workload: str, batch: int):
    import torch

    from suite.spec import load_workload
    from suite.targets.base import BuildContext
    from suite.targets.registry import get_target
    from suite.targets.torch.model import inference_model, prepare_fn
    from suite.weights import init_weights, make_inputs

    wl = load_workload(REPO / "workloads" / f"{workload}.yaml")
    params = {**wl.param_grid()[0], "batch": batch}
    ctx = BuildContext(wl, init_weights(wl, params), params, wl.shapes(params), get_target("torch:eager"))
    suite_model = inference_model(ctx)
    layers = list(suite_model.nodes.values())
    names = [s.name for s in wl.inputs]
    chain = all(list(n.inputs) == [prev] for n, prev in zip(wl.nodes, [names[0]] + [n.name for n in wl.nodes]))
    assert chain and len(names) == 1, f"{workload}: not a chain, no nn.Sequential equivalent"
    hand = torch.nn.Sequential(*layers).eval()

    order = [(n.name, list(n.inputs)) for n in wl.nodes]
    outputs = list(wl.outputs)

    class Walk(torch.nn.Module):  # the graph walk the generated forward replaced
        def __init__(self):
            super().__init__()
            self.nodes = suite_model.nodes

        def forward(self, *inputs):
            values = dict(zip(names, inputs))
            for name, srcs in order:
                values[name] = self.nodes[name](*[values[s] for s in srcs])
            return tuple(values[o] for o in outputs)

    x = prepare_fn(ctx, torch.device("cpu"))(make_inputs(wl, params))
    with torch.inference_mode():
        ref = hand(*x)
        for m in (suite_model, Walk()):
            assert torch.equal(m(*x)[0], ref), "the three forms must compute the same thing"
    return {"hand": hand, "suite": suite_model, "walk": Walk()}, x


def _block(m, x, loops: int) -> float:
    """Seconds per call of ``m(*x)`` over ``loops`` calls back to back."""
    t0 = time.perf_counter()
    for _ in range(loops):
        m(*x)
    return (time.perf_counter() - t0) / loops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pairs", type=int, default=300, help="side-by-side blocks per form and case")
    ap.add_argument("--block-ms", type=float, default=20.0, help="length of one timed block")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.pairs} rounds of side-by-side blocks of "
          f"~{args.block_ms:g} ms (hand, suite, walk in rotating order); medians in µs; ratios: median of the "
          f"per-round ratios [interquartile range]")
    print(f"{'workload':<16}{'batch':>6}{'hand':>9}{'suite':>9}{'walk':>9}   {'suite/hand':<22}{'walk/hand':<22}")
    for workload, batch in CASES:
        ms, x = models(workload, batch)
        per: dict[str, list[float]] = {k: [] for k in ms}
        with torch.inference_mode():
            for m in ms.values():  # warm up, then size a block
                _block(m, x, 50)
            loops = max(1, int(args.block_ms / 1e3 / _block(ms["hand"], x, 200)))
            keys = list(ms)
            for r in range(args.pairs):
                for k in keys[r % 3:] + keys[:r % 3]:  # rotate the order: no form is always first
                    per[k].append(_block(ms[k], x, loops))
        med = {k: statistics.median(v) * 1e6 for k, v in per.items()}

        def ratio(form):  # the blocks of one round ran within ~60 ms of each other: same host state
            q = statistics.quantiles([a / h for a, h in zip(per[form], per["hand"])], n=4)
            return f"{q[1]:.3f} [{q[0]:.3f}..{q[2]:.3f}]"

        print(f"{workload:<16}{batch:>6}{med['hand']:>9.1f}{med['suite']:>9.1f}{med['walk']:>9.1f}   "
              f"{ratio('suite'):<22}{ratio('walk'):<22}")


if __name__ == "__main__":
    main()
