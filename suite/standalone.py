"""The suite's own code of one op, copied out of the suite so that a script runs it with nothing else installed.

A repro bundle (:mod:`suite.diagnose`) of a native target has to show the framework code that computed the
wrong value: for ``torch:eager`` that is the node's ``nn.Module`` as :mod:`suite.targets.torch.ops` builds it
from weights mapped by :mod:`suite.targets.torch.weights`. :class:`Closure` collects, from Python's own
source of those functions, every module-level name they reference (functions, classes, constants, imports),
transitively, and writes one plain module per suite module involved (``src/suite_targets_torch_ops.py``, ...)
that imports only the framework and the standard library. The copies are the suite's code verbatim, not
a rewrite, so a script built on them computes exactly what the target computed, mapping bugs included.

What cannot be copied (a lambda or an object without source in a table the op reads) raises
:class:`NotStandalone`; the bundle then has no native script and its README says why.
"""
from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import textwrap
import types
from pathlib import Path

SUITE = "suite"
SCRIPT = "__script__"  # the pseudo-module of the script's own constants


class NotStandalone(Exception):
    """The op's code references something that cannot be copied out of the suite."""


def flat(module_name: str) -> str:
    """The generated module's name: ``suite.targets.torch.ops`` -> ``suite_targets_torch_ops``."""
    return module_name.replace(".", "_")


def _is_suite(module_name: str | None) -> bool:
    return bool(module_name) and module_name.split(".")[0] == SUITE


def _locals(tree: ast.AST) -> set[str]:
    """Names bound inside a definition: parameters, assignments, loop targets, nested defs, imports."""
    out: set[str] = set()
    top = tree.body[0] if isinstance(tree, ast.Module) and tree.body else tree
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            out.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            out.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node is not top:
            out.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            out.update((a.asname or a.name).split(".")[0] for a in node.names)
    return out


def _references(tree: ast.AST) -> tuple[set[str], set[tuple[str, str]]]:
    """(global names read, (name, attribute) pairs read) outside annotations."""
    names: set[str] = set()
    attrs: set[tuple[str, str]] = set()

    def visit(node):
        if isinstance(node, ast.arg):
            return  # its annotation is not code
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for d in node.decorator_list:
                visit(d)
            for d in node.args.defaults + [x for x in node.args.kw_defaults if x is not None]:
                visit(d)
            for stmt in node.body:
                visit(stmt)
            return
        if isinstance(node, ast.AnnAssign):
            if node.value is not None:
                visit(node.value)
            return
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            attrs.add((node.value.id, node.attr))
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            names.add(node.id)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    local = _locals(tree)
    return names - local, {(n, a) for n, a in attrs if n not in local}


class Closure:
    """Module-level definitions of suite modules, with everything they reference, ready to be written out."""

    def __init__(self):
        self.defs: dict[str, list[str]] = {}      # suite module -> definitions, dependencies first
        self.imports: dict[str, set[str]] = {}    # suite module -> import lines
        self._seen: set[tuple[str, str]] = set()

    def add(self, value) -> str:
        """Copies a suite function or class (and what it needs); returns ``module:name`` to import it by."""
        module = getattr(value, "__module__", None)
        name = _bound_name(value) if _is_suite(module) else ""
        if not name:
            raise NotStandalone(f"{value!r} is not a module-level definition of the suite")
        self._name(module, name)
        return f"{flat(module)}:{name}"

    def _module(self, module: str):
        self.defs.setdefault(module, [])
        self.imports.setdefault(module, set())
        return importlib.import_module(module)

    def _name(self, module: str, name: str) -> None:
        """Makes ``name`` of suite module ``module`` defined in its copy."""
        if (module, name) in self._seen:
            return
        self._seen.add((module, name))
        mod = self._module(module)
        if name not in mod.__dict__:
            raise NotStandalone(f"{module}.{name} does not exist")
        self._bind(module, name, mod.__dict__[name])

    def _bind(self, module: str, name: str, value) -> None:
        imports = self.imports[module]
        if isinstance(value, types.ModuleType):
            target = flat(value.__name__) if _is_suite(value.__name__) else value.__name__
            imports.add(f"import {target}" if target == name else f"import {target} as {name}")
            return
        if inspect.isfunction(value) or inspect.isclass(value):
            origin = getattr(value, "__module__", None)
            if _is_suite(origin):
                if origin == module and value.__name__ == name and not getattr(value, "__closure__", None):
                    self._define(module, name, value)
                elif origin == module and inspect.isfunction(value):  # made by a factory: copy the statement
                    self._statement(module, name)
                else:
                    bound = _bound_name(value)
                    if not bound:
                        raise NotStandalone(f"{value!r} is not a module-level definition of {origin}")
                    self._name(origin, bound)
                    imports.add(f"from {flat(origin)} import {bound}" + ("" if bound == name else f" as {name}"))
                return
            imports.add(self._foreign(value, name))
            return
        wrapped = getattr(value, "__wrapped__", None)  # functools.lru_cache and friends: copy the source
        if wrapped is not None and getattr(wrapped, "__module__", None) == module:
            self._define(module, name, wrapped)
            return
        self.defs[module].append(f"{name} = {self._expr(module, value)}")

    def _foreign(self, value, name: str) -> str:
        origin, qual = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
        if origin and qual and "." not in qual:
            try:
                if getattr(importlib.import_module(origin), qual, None) is value:
                    return f"from {origin} import {qual}" + ("" if qual == name else f" as {name}")
            except ImportError:
                pass
        raise NotStandalone(f"{name} = {value!r} cannot be imported by name")

    def _define(self, module: str, name: str, value) -> None:
        try:
            source = textwrap.dedent(inspect.getsource(value))
        except (OSError, TypeError) as e:
            raise NotStandalone(f"no source for {module}.{name}: {e}") from None
        if value.__name__ == "<lambda>":
            raise NotStandalone(f"{module}.{name} is a lambda")
        names, attrs = _references(ast.parse(source))
        self._dependencies(module, names - {name}, attrs)
        self.defs[module].append(source.rstrip() + "\n")

    def _statement(self, module: str, name: str) -> None:
        """Copies the module-level statement that binds ``name`` (``relu, gelu = (_act(n) for n in ...)``)."""
        mod = importlib.import_module(module)
        source = inspect.getsource(mod)
        for stmt in ast.parse(source).body:
            targets = [t for n in ast.walk(stmt) if isinstance(n, (ast.Assign, ast.AnnAssign))
                       for t in (n.targets if isinstance(n, ast.Assign) else [n.target])] \
                if isinstance(stmt, (ast.Assign, ast.AnnAssign)) else []
            bound = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
            if name not in bound:
                continue
            key = (module, f"<statement {stmt.lineno}>")
            if key in self._seen:
                return
            self._seen.add(key)
            self._seen.update((module, b) for b in bound)
            names, attrs = _references(stmt)
            self._dependencies(module, names - bound, attrs)
            self.defs[module].append(ast.get_source_segment(source, stmt) + "\n")
            return
        raise NotStandalone(f"{module}.{name} is made by code the suite cannot copy (no statement binds it)")

    def _dependencies(self, module: str, names: set[str], attrs: set[tuple[str, str]]) -> None:
        mod = importlib.import_module(module)
        for n in sorted(names):
            if n in mod.__dict__:
                self._name(module, n)
        for n, attr in sorted(attrs):
            target = mod.__dict__.get(n)
            if isinstance(target, types.ModuleType) and _is_suite(target.__name__):
                self._module(target.__name__)
                self._name(target.__name__, attr)

    def _expr(self, module: str, value) -> str:
        """Source of a constant: literals and containers of them, and suite functions (by module)."""
        if value is None or isinstance(value, (bool, int, float, str, bytes)):
            r = repr(value)
            if isinstance(value, float) and not ast.literal_eval(r) == value:
                raise NotStandalone(f"{value!r} does not survive repr")
            return r
        if isinstance(value, tuple):
            return "(" + "".join(self._expr(module, v) + ", " for v in value) + ")"
        if isinstance(value, list):
            return "[" + ", ".join(self._expr(module, v) for v in value) + "]"
        if isinstance(value, (set, frozenset)):
            inner = ", ".join(sorted(self._expr(module, v) for v in value))
            return f"frozenset({{{inner}}})" if isinstance(value, frozenset) else (f"{{{inner}}}" if inner else "set()")
        if isinstance(value, dict):
            return "{" + ", ".join(f"{self._expr(module, k)}: {self._expr(module, v)}" for k, v in value.items()) + "}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            cls = type(value)
            ref = self._expr(module, cls)
            args = ", ".join(f"{f.name}={self._expr(module, getattr(value, f.name))}"
                             for f in dataclasses.fields(value) if f.init)
            return f"{ref}({args})"
        if (inspect.isfunction(value) or inspect.isclass(value)) and _is_suite(value.__module__):
            bound = self.add(value).split(":")[1]
            if value.__module__ == module:
                return bound
            self.imports[module].add(f"import {flat(value.__module__)}")
            return f"{flat(value.__module__)}.{bound}"
        raise NotStandalone(f"a constant of {module} holds {value!r}, which has no source form")

    def literal(self, value) -> str:
        """Source of a constant for the script itself (attributes holding suite dataclasses, ...); the
        imports it needs are :meth:`script_imports`."""
        self.imports.setdefault(SCRIPT, set())
        return self._expr(SCRIPT, value)

    def script_imports(self) -> list[str]:
        return sorted(self.imports.get(SCRIPT, ()))

    def write(self, folder: Path, header: str) -> list[Path]:
        """One ``<flat name>.py`` per suite module copied, into ``folder``; returns their paths."""
        folder.mkdir(parents=True, exist_ok=True)
        out = []
        for module, defs in self.defs.items():
            if module == SCRIPT:
                continue
            lines = [f'"""{header}\n\nCopied from {module} ({module.replace(".", "/")}.py)."""',
                     "from __future__ import annotations", "", *sorted(self.imports[module]), "", ""]
            body = "\n\n".join(d.rstrip() for d in defs)
            path = folder / f"{flat(module)}.py"
            path.write_text("\n".join(lines) + body + "\n")
            out.append(path)
        return out


def _bound_name(value) -> str:
    """The module-level name its module binds ``value`` to: its ``__name__``, or for a function a factory
    made under another name (``relu6 = _act(...)``) the name found in the module; "" when none."""
    mod = importlib.import_module(value.__module__)
    name = getattr(value, "__name__", "")
    if getattr(mod, name, None) is value:
        return name
    return next((k for k, v in vars(mod).items() if v is value), "")

