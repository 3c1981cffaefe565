"""IREE targets (``jax>stablehlo@iree``, ``torch>iree@iree``): run an ``iree-compile``d ``.vmfb`` with IREE's
``local-task`` driver (CPU profiles) or its ``cuda`` driver (the cuda profile).

Imports iree.runtime and NumPy only — never torch, tensorflow or jax (nor iree.compiler) — so an
artifact compiled on a workstation runs on a box with just ``iree-base-runtime`` and ``numpy``
(``bench run --artifacts DIR``). Artifacts (produced by the export phase, :mod:`suite.targets.common.artifacts`):

* ``jax>stablehlo@iree``: ``jax.export``'s portable StableHLO of the ``jax:jit`` function (weights closed
  over as constants), compiled by ``iree-compile`` for the ``llvm-cpu`` backend into ``model.vmfb``;
* ``torch>iree@iree``: ``iree.turbine.aot.export`` of the ``torch:eager`` module (torch-dialect MLIR, weights
  inlined), compiled the same way.

On the ``cuda`` profile the same source is compiled for IREE's ``cuda`` HAL device instead
(``--iree-hal-target-device=cuda --iree-cuda-target=sm_80``: PTX the driver compiles for the GPU at load),
a separate artifact (``Export.per_device``: the device is part of its cache key), run by the ``cuda`` driver.
The compilation itself needs no GPU (it is tested on CPU-only hosts); running it was not measured on a GPU.

The code is generated for ``--iree-llvmcpu-target-cpu=host`` (``IREEOptions.target_cpu``): the exporting
machine's CPU, with every instruction-set extension it has. The manifest records that CPU (model and a
fingerprint of its feature flags); :func:`build` refuses, with one line saying why, to run such an
artifact on a CPU that differs, rather than risk an illegal instruction or time code tuned elsewhere.

Threads: IREE's task system reads its topology flags once per process, when the first ``local-task``
device is created; flags parsed afterwards are silently ignored. :func:`set_task_topology` parses
``--task_topology_group_count=<the profile's threads>`` once per process, before any device (from the
worker's ``apply_threads`` hook, and again at the first build for a process that skipped it); the worker
threads are unpinned, inside the affinity the worker process already has from the profile. The layout
records the flags in force.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import time

from suite.targets.base import Built, BuildContext
from suite.targets.common import io_layout
from suite.targets.common.artifacts import artifact_path

DRIVER = "local-task"
DRIVERS = {"cpu": "local-task", "cuda": "cuda"}  # the artifact's device -> the IREE driver that runs it
_TOPOLOGY: list[str] = []  # the task-system flags this process parsed (IREE reads them once)
_CONFIGS: dict = {}  # driver -> iree.runtime.Config: one device (and one worker pool) per process


def unsupported(workload, info) -> str | None:
    return None  # the compiler decides; its refusal becomes the cell's reason


def task_flags(threads: int) -> list[str]:
    """The task-system flags for a profile's thread count (0: IREE's default, one worker per physical core)."""
    return [f"--task_topology_group_count={int(threads)}"] if threads and threads > 0 else []


def set_task_topology(threads: int) -> list[str]:
    """Parses :func:`task_flags` once per process, before the first device is created. Returns the flags in
    force (those of the first call: the task system is process-wide)."""
    import iree.runtime as ireert

    if not _TOPOLOGY and not _CONFIGS:
        flags = task_flags(threads)
        if flags:
            ireert.flags.parse_flags(*flags)
        _TOPOLOGY.extend(flags or ["(IREE default topology)"])
    return list(_TOPOLOGY)


def host_cpu() -> dict:
    """This machine's CPU: its model name and a fingerprint of its feature flags (/proc/cpuinfo)."""
    from suite.envinfo import cpu_model

    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    flags = " ".join(sorted(value.split()))
                    break
    except OSError:
        pass
    return {"model": cpu_model(), "isa": hashlib.sha256(flags.encode()).hexdigest()[:12] if flags else None}


def check_cpu(man: dict, path) -> None:
    """Refuses a target_cpu=host artifact compiled on a different CPU (see the module docstring)."""
    iree = man.get("iree", {})
    if iree.get("device", "cpu") != "cpu" or iree.get("target_cpu") != "host":
        return
    built, here = iree.get("compiled_on", {}), host_cpu()
    if built != here:
        raise RuntimeError(f"{path.name} was compiled with --iree-llvmcpu-target-cpu=host on another CPU "
                           f"({built.get('model')}, flags {built.get('isa')}); this one is {here['model']} "
                           f"(flags {here['isa']}): export it on this machine (bench export)")


def _config(ireert, driver: str):
    if driver not in _CONFIGS:
        _CONFIGS[driver] = ireert.Config(driver)
    return _CONFIGS[driver]


def artifact_device(man: dict) -> str:
    """The device a manifest's .vmfb was compiled for (artifacts from before CUDA was declared: cpu)."""
    return man.get("iree", {}).get("device", "cpu")


def build(ctx: BuildContext) -> Built:
    import iree.runtime as ireert

    path, man = artifact_path(ctx)
    compiled_for = artifact_device(man)
    if compiled_for != ctx.device:
        raise RuntimeError(f"{path.name} was compiled for {compiled_for}, this profile runs on {ctx.device}: "
                           f"export it for {ctx.device} (bench export -p <a {ctx.device} profile>)")
    check_cpu(man, path)
    driver = DRIVERS[compiled_for]
    # the task topology is the CPU driver's; set before the first device, afterwards it does nothing
    topology = set_task_topology(int(ctx.threads or 0)) if driver == DRIVER else []
    t0 = time.perf_counter()
    config = _config(ireert, driver)
    context = ireert.SystemContext(config=config)
    vm = ireert.VmModule.mmap(context.instance, str(path))
    context.add_vm_module(vm)
    fn = context.modules[vm.name]["main"]
    load_s = time.perf_counter() - t0
    n_out = len(man["outputs_nhwc"])

    def prepare(host):  # device arrays made once, outside anything timed
        return [ireert.asdevicearray(config.device, x) for x in io_layout.host_inputs(man, host)]

    def run(xs, _keep=(context, vm)):
        outs = fn(*xs)  # synchronous invocation; to_host() below also waits for a device's results
        outs = outs if isinstance(outs, (tuple, list)) else (outs,)
        if len(outs) != n_out:
            raise ValueError(f"{path.name}: {len(outs)} outputs, the workload has {n_out}")
        return tuple(o.to_host().copy() for o in outs)  # host-complete copies, as every runtime returns

    if driver == DRIVER:
        threads = ", ".join(f.lstrip("-") for f in topology)
        how = f"IREE {DRIVER} threads={ctx.threads or 'default'} ({threads})"
    else:
        how = f"IREE {driver} driver"
    return Built(prepare=prepare, run=run, to_numpy=lambda outs: io_layout.canonical_outputs(man, outs),
                 layout=f"{man.get('layout', '')}; {how}",
                 compile_s=load_s, artifact_path=str(path), artifact_bytes=man.get("artifact_bytes"),
                 versions={**man.get("versions", {}),
                           "iree-base-runtime": importlib.metadata.version("iree-base-runtime")})
