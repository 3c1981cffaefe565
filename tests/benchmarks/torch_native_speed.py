"""Benchmark (run by hand; prints figures, asserts nothing): is ``torch:eager`` PyTorch's own speed?

The suite's torch model has a generated straight-line ``forward`` (suite/targets/torch/model.py). This
times, in one process, interleaved over rounds, with ``torch.utils.benchmark.Timer.blocked_autorange``:

* ``hand``: the same layer modules (the very objects, so the same weights) in a hand-written
  ``nn.Sequential``, which is how a user would write these chain-shaped workloads;
* ``suite``: the suite's generated module, as ``torch:eager`` runs it (inference_mode);
* ``walk``: the previous design, a forward that walks the graph in a Python loop with a dict of values,

and prints the medians and the ratios suite/hand and walk/hand.

    .venv/bin/python tests/benchmarks/torch_native_speed.py [--threads 1] [--rounds 7]
"""
from __future__ import annotations

import argparse
import statistics
import sys
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--min-run-time", type=float, default=1.0, help="seconds per blocked_autorange")
    args = ap.parse_args()
    import torch
    from torch.utils import benchmark

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.rounds} interleaved rounds, "
          f"median of per-round medians (µs)")
    print(f"{'workload':<16}{'batch':>6}{'hand':>10}{'suite':>10}{'walk':>10}{'suite/hand':>12}{'walk/hand':>11}")
    for workload, batch in CASES:
        ms, x = models(workload, batch)
        per: dict[str, list[float]] = {k: [] for k in ms}
        with torch.inference_mode():
            for r in range(args.rounds):
                keys = list(ms)
                for k in keys[r % 3:] + keys[:r % 3]:  # rotate the order: no form is always first
                    m = ms[k]
                    t = benchmark.Timer("m(*x)", globals={"m": m, "x": x}, num_threads=args.threads)
                    per[k].append(t.blocked_autorange(min_run_time=args.min_run_time).median)
        med = {k: statistics.median(v) * 1e6 for k, v in per.items()}
        # per-round ratios (the forms of one round ran back to back): their median and range
        rs = sorted(s / h for s, h in zip(per["suite"], per["hand"]))
        print(f"{workload:<16}{batch:>6}{med['hand']:>10.1f}{med['suite']:>10.1f}{med['walk']:>10.1f}"
              f"{med['suite'] / med['hand']:>12.3f}{med['walk'] / med['hand']:>11.3f}"
              f"   suite/hand per round {rs[0]:.3f}..{rs[-1]:.3f}")


if __name__ == "__main__":
    main()
