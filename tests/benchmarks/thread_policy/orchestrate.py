"""The sweep (called by study.py): every (framework, setting) x {quiet, busy} x reps, each in a fresh worker
process. Busy = a neighbour started after the worker is READY (models built/compiled) and killed in a finally
block right after its measurement: `--neighbour spin` (default) is `python -c "while True: pass"` pinned to
core 1 with taskset; `--neighbour torch` is burner_torch.py, unpinned.
Because the host may be shared, each run first waits (<= MAX_WAIT s) for foreign CPU load < QUIET_THRESH
cores and records the foreign load seen during the measurement. Appends JSON lines to
OUT/results.jsonl (spin) or OUT/oversub_results.jsonl (torch) and progress lines to the matching log."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLK = os.sysconf("SC_CLK_TCK")
QUIET_THRESH, MAX_WAIT = 0.3, 5
BURNER_WARM = 0.2  # s between starting the neighbour and "go"
CONFIGS = [
    ("torch", "default", {}),
    ("torch", "OMP_WAIT_POLICY=PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE"}),
    ("torch", "GOMP_SPINCOUNT=10000", {"GOMP_SPINCOUNT": "10000"}),
    ("torch", "GOMP_SPINCOUNT=1000", {"GOMP_SPINCOUNT": "1000"}),
    ("ort", "default", {}),
    ("ort", "session.intra_op.allow_spinning=0", {}),
    ("ort", "session.intra_op.spin_duration_us=100", {}),
    ("ort", "session.intra_op.spin_duration_us=1000", {}),
    ("tf", "default", {}),
    ("tf", "disable_thread_spinning", {}),
    ("jax", "default", {}),
]
FRAMEWORKS = ["torch", "ort", "tf", "jax"]
RESULTS = {"spin": "results.jsonl", "spin-unpinned": "unpinned_results.jsonl", "torch": "oversub_results.jsonl"}
LOGS = {"spin": "orchestrate.log", "spin-unpinned": "unpinned.log", "torch": "oversub.log"}


def select(frameworks: list[str], settings: list[str] | None = None) -> list[tuple[str, str, dict]]:
    """CONFIGS restricted to these frameworks and (when given) these setting names, in CONFIGS order."""
    configs = [c for c in CONFIGS if c[0] in frameworks]
    if settings:
        configs = [c for c in configs if c[1] in settings]
    return configs


def burner_cmd(neighbour: str) -> list[str]:
    if neighbour == "spin":
        return ["taskset", "-c", "1", sys.executable, "-c", "while True: pass"]
    if neighbour == "spin-unpinned":  # the scheduler moves it between cores, as a stray process would
        return [sys.executable, "-c", "while True: pass"]
    return [sys.executable, str(HERE / "burner_torch.py")]  # oversubscription test, unpinned


def host_busy():
    with open("/proc/stat") as fh:
        v = [int(t) for t in fh.readline().split()[1:]]
    return sum(v) - v[3] - v[4]


def proc_jiffies(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            f = fh.read().rsplit(")", 1)[1].split()
        return int(f[11]) + int(f[12])
    except OSError:
        return 0


def foreign_load(pid, dt=1.0):
    h0, p0 = host_busy(), proc_jiffies(pid)
    time.sleep(dt)
    return (host_busy() - h0 - (proc_jiffies(pid) - p0)) / CLK / dt


def run_one(fw, setting, extra_env, cond, rep, out, log, *, work_dir: Path, models_dir: Path,
            neighbour: str = "spin", burner_warm: float = BURNER_WARM):
    env = dict(os.environ, OMP_NUM_THREADS="2", MKL_NUM_THREADS="2", TF_CPP_MIN_LOG_LEVEL="2", **extra_env)
    w = subprocess.Popen([sys.executable, str(HERE / "worker.py"), fw, setting, str(models_dir)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env=env, cwd=str(work_dir))
    burner = None
    rec = {"fw": fw, "setting": setting, "cond": cond, "rep": rep}
    try:
        line = w.stdout.readline()
        while line and not line.startswith("READY"):
            line = w.stdout.readline()
        if not line:
            raise RuntimeError("worker died before READY")
        t_wait = time.time()
        fl = foreign_load(w.pid)
        while fl > QUIET_THRESH and time.time() - t_wait < MAX_WAIT:
            fl = foreign_load(w.pid)
        rec["foreign_before"] = round(fl, 2)
        rec["waited_s"] = round(time.time() - t_wait, 1)
        if cond == "busy":
            burner = subprocess.Popen(burner_cmd(neighbour),
                                      env={k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")})
            time.sleep(burner_warm)
        w.stdin.write("go\n"); w.stdin.flush()
        for line in w.stdout:
            if line.startswith("RESULT "):
                rec.update(json.loads(line[7:]))
                break
    except Exception as e:  # record and continue
        rec["error"] = repr(e)
    finally:
        if burner is not None:
            burner.kill(); burner.wait()
        try:
            w.wait(timeout=30)
        except subprocess.TimeoutExpired:
            w.kill(); w.wait()
    # the spin neighbour is known to use 1 core; the torch neighbour's load varies, so it counts as foreign
    for r in rec.get("results", {}).values():
        r["foreign_cores"] = round(r["other_cores"] - (1.0 if cond == "busy" and neighbour.startswith("spin") else 0.0), 2)
    out.write(json.dumps(rec) + "\n"); out.flush()
    mlp = rec.get("results", {}).get("mlp_b1", {})
    fields = (time.strftime("%H:%M:%S"), rep, fw, setting, cond, "wait", rec.get("waited_s"),
              "fb", rec.get("foreign_before"), "mlp_b1", round(mlp.get("median_ms", -1), 3),
              "foreign", mlp.get("foreign_cores"), rec.get("error", ""))
    print(*fields, flush=True)
    print(*fields, file=log, flush=True)


def sweep(work_dir: Path, configs, reps: int = 3, *, models_dir: Path, neighbour: str = "spin",
          burner_warm: float = BURNER_WARM) -> Path:
    """Runs the sweep, appending to work_dir/RESULTS[neighbour]; returns that path."""
    path = work_dir / RESULTS[neighbour]
    with open(path, "a") as out, open(work_dir / LOGS[neighbour], "a") as log:
        for rep in range(reps):
            for fw, setting, extra in configs:
                conds = ["quiet", "busy"] if rep % 2 == 0 else ["busy", "quiet"]
                for cond in conds:
                    run_one(fw, setting, extra, cond, rep, out, log, work_dir=work_dir, models_dir=models_dir,
                            neighbour=neighbour, burner_warm=burner_warm)
    return path
