"""Which reference ops have a test that checks them by hand (the coverage test compares with suite.ops.OPS)."""
from __future__ import annotations

COVERED: set[str] = set()

# Test modules outside test_reference.py that hold by-hand reference tests (imported by the coverage test,
# so it holds when test_reference.py runs alone).
MODULES = ("test_ops_activation_shape", "test_ops_attention_gqa_rope", "test_ops_gru", "test_ops_spatial")


def covers(*ops):
    """Records which reference ops a test checks."""
    COVERED.update(ops)
    return lambda f: f
