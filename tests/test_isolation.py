"""Import hygiene: the package and the CLI import no ML framework (STYLE.md lesson 2)."""
from __future__ import annotations

import subprocess
import sys

import pytest

FRAMEWORKS = ("torch", "tensorflow", "jax", "keras", "onnxruntime", "mlflow", "tensorboard")  # + trackers (bench publish)

PROBE = """
import sys, runpy
sys.argv = {argv!r}
{body}
bad = [m for m in {frameworks!r} if m in sys.modules]
print("IMPORTED:" + ",".join(bad))
"""


@pytest.mark.parametrize("body,argv", [
    ("import suite, suite.spec, suite.reference, suite.verify, suite.plan, suite.scheduler, suite.runner, "
     "suite.engine, suite.profiles, suite.results, suite.targets.registry", ["x"]),
    ("import suite.targets.torch.model, suite.targets.tensorflow.model, suite.targets.jax.model", ["x"]),
    ("from suite.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass", ["bench", "--help"]),
    ("from suite.cli import main\nmain(['list'])", ["bench", "list"]),
], ids=["import-suite", "import-target-modules", "bench-help", "bench-list"])
def test_no_framework_imported(body, argv):
    out = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv, body=body, frameworks=FRAMEWORKS)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    line = [l for l in out.stdout.splitlines() if l.startswith("IMPORTED:")][-1]
    assert line == "IMPORTED:", f"frameworks imported: {line}"
