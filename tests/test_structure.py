"""The package's shape: no import cycle in suite/, one parser of target ids that agrees with every registry
entry, typed options, and no test-only target in production listings."""
from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from suite.targets.registry import TARGETS, Options, all_targets, parse_target_id

SUITE = REPO / "suite"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """suite module -> the suite modules it imports, at module level or inside functions (a lazy import is
    still an edge: it runs whenever that function does)."""
    modules = {_module_name(p): p for p in SUITE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = ".".join(pkg[:len(pkg) - node.level + 1] + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            if isinstance(node, ast.ImportFrom):  # `from pkg import name`: the name, when it is a module
                targets = [t for t in targets[1:] if t in modules] or targets[:1]
            for t in targets:
                while t and t not in modules:  # `import a.b.c` imports a.b.c; a name may be an attribute
                    t = t.rpartition(".")[0]
                # a package's own ancestors are loaded before it anyway: `from suite.dashboard import charts`
                # inside suite.dashboard.build is an edge to charts, not to the package
                if t and t != name and t.startswith("suite") and not name.startswith(t + "."):
                    edges.add(t)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_suite_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_cycle_finder_finds_a_cycle():
    """The check can fail: a planted cycle (the old profiles -> worker -> profiles) is reported."""
    graph = import_graph()
    graph["suite.paths"] = graph["suite.paths"] | {"suite.worker"}
    assert find_cycle(graph) is not None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_package_ancestors_are_not_edges():
    """`from suite.targets.torch import model` inside suite/targets/torch/__init__.py is no cycle."""
    g = import_graph()
    assert "suite.targets.torch.model" in g["suite.targets.torch"]
    assert "suite.targets.torch" not in g["suite.targets.torch.model"]


@pytest.mark.parametrize("target_id", list(all_targets()))
def test_parser_agrees_with_every_registry_entry(target_id):
    info = all_targets()[target_id]
    parsed = parse_target_id(target_id)
    if target_id in TARGETS:
        assert (parsed.framework, parsed.format, parsed.runtime) == (info.framework, info.format, info.runtime)
        assert parsed.variant in (None, info.variant)
    else:  # test ids (test:numpy, keras:bug-...) give framework / runtime explicitly where the id cannot
        assert parsed.format == info.format and parsed.framework in (info.framework, "test")
    assert isinstance(info.options, Options) and dataclasses.is_dataclass(info.options)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.options.__setattr__("x", 1)


@pytest.mark.parametrize("bad", ["torch", "torch:", "Torch:eager", "torch>onnx", "keras[]", "a>b@c d"])
def test_parser_refuses_malformed_ids(bad):
    with pytest.raises(ValueError, match="malformed target id"):
        parse_target_id(bad)


def test_registry_holds_production_targets_only():
    assert not any(t.startswith("test:") or ":bug-" in t or "onnx-nan" in t or "onnx-garbage" in t for t in TARGETS)
    assert all(not m.startswith("suite.targets.testing") for m in (t.module for t in TARGETS.values()))
    assert set(all_targets()) > set(TARGETS)  # the tests run with the switch on


def test_bench_list_shows_no_test_target():
    env = {k: v for k, v in __import__("os").environ.items() if k != "BENCH_TESTING_TARGETS"}
    out = subprocess.run([sys.executable, "-m", "suite.cli", "list"], capture_output=True, text=True, cwd=REPO,
                         env=env, check=True).stdout
    assert "torch:eager" in out
    assert "test:" not in out and ":bug-" not in out and "onnx-nan" not in out


def test_production_modules_have_no_bug_branches():
    """Injected bugs live in suite/targets/testing/ only."""
    offenders = [str(p.relative_to(REPO)) for p in (SUITE / "targets").rglob("*.py")
                 if "testing" not in p.parts and "inject_bug" in p.read_text()]
    assert offenders == []
