"""Test-only targets: faults, broken exporters and deliberate porting bugs.

Registered only when ``$BENCH_TESTING_TARGETS=1`` (tests/conftest.py sets it; see
``suite.targets.registry.testing_enabled``): `bench list` and the default matrix never see them.
Injected bugs wrap a production target (its weight-mapping table, optimiser or outputs) from here;
production modules carry no bug branches.
"""
