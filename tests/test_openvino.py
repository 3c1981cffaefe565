"""OpenVINO routes: what the suite sets and what it keeps out. Verification of every op case and shipped
workload is in test_targets.py, export-here-run-there without a framework in test_export.py."""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO

pytest.importorskip("openvino")


def test_the_converter_sends_no_telemetry():
    """openvino.convert_model reports to Google Analytics through openvino_telemetry unless a consent file
    says no; the export worker's import makes the converter take its no-op stub."""
    probe = ("from suite.targets.common.convert import import_openvino\n"
             "ov = import_openvino()\n"
             "import openvino.tools.ovc.convert_impl as impl, openvino.tools.ovc.telemetry_utils as tu\n"
             "print(impl.tm.__name__, tu.tm.__name__)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["openvino.tools.ovc.telemetry_stub"] * 2


def test_plugin_settings_follow_the_profile_and_keep_float32():
    from suite.targets.runtimes.openvino import compile_config, plugin_message

    assert compile_config(2) == {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1",
                                 "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": "2"}
    assert "INFERENCE_NUM_THREADS" not in compile_config(0)  # 0: the plugin's default, every core allowed
    err = RuntimeError("Exception from src/a.cpp:1:\nException from src/b.cpp:2:\nNode x of type Loop\n\n")
    assert plugin_message(err) == "OpenVINO: Node x of type Loop"


def test_an_op_the_converter_cannot_translate_is_a_refusal():
    from suite.targets.base import UnsupportedError
    from suite.targets.common.convert import openvino_convert

    class OpConversionFailure(Exception):
        pass

    class FakeOV:  # the converter's real message, as openvino 2026.4 raises it for avg_pool2d(divisor_override)
        @staticmethod
        def convert_model(source, **kw):
            raise OpConversionFailure(
                "Check 'false' failed at src/frontends/common_translators/src/unconverted_ops_report.cpp:151:\n"
                "Model wasn't fully converted. Failed operations detailed log:\n-- aten::avg_pool2d with a message:\n"
                "[PyTorch Frontend] Translation for aten::avg_pool2d do not support divisor_override input.\n\n"
                "Summary:\n-- Conversion is failed for: aten::avg_pool2d\n")

    with pytest.raises(UnsupportedError, match=r"^openvino.convert_model: Conversion is failed for: aten::avg_pool2d; "
                                               r"\[PyTorch Frontend\] Translation for aten::avg_pool2d do not support"):
        openvino_convert(FakeOV, None)
    with pytest.raises(ValueError):  # anything else is an error of the export, not a refusal
        openvino_convert(type("X", (), {"convert_model": staticmethod(lambda s: (_ for _ in ()).throw(ValueError("x")))}),
                         None)
