"""The layers of the package, read from the source: the net protocol, the losses and the rules at the
bottom, knowing no net; the nets above them; the step; the driver on top; and no import circle
anywhere, counting imports under ``TYPE_CHECKING``, inside functions and through
``importlib.import_module``."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jdfa"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str) -> set[str]:
    """The jdfa modules ``name`` imports anywhere in its source. ``from a import b`` names the module
    ``a.b`` when there is one, else ``a``; a package reached only as the parent of a submodule it
    imports is not counted (Python runs its ``__init__`` first, whatever the order of the layers)."""
    path, found = MODULES[name], set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else base)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)):
            found.add(node.args[0].value)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name) for name in MODULES}


def _reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in GRAPH[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_the_reader_sees_the_imports_it_must_judge():
    # the walk finds imports at module level, under TYPE_CHECKING, inside functions and lazy ones
    assert "jdfa.losses" in GRAPH["jdfa.net"]
    assert "jdfa.driver" in GRAPH["jdfa"]  # the lazy driver import of jdfa/__init__.py
    assert "jdfa.rules.base" in GRAPH["jdfa.rules.classic"]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_circle(name):
    circle = sorted(m for m in GRAPH[name] if name in _reachable(m))
    assert not circle, f"{name} imports {circle}, which import {name} back"


NETS = ("jdfa.mlp", "jdfa.model", "jdfa.chain", "jdfa.chain_units", "jdfa.chain_plan",
        "jdfa.chain_points", "jdfa.blocks", "jdfa.feedback", "jdfa.update", "jdfa.remat", "jdfa.batch_modes")


def _is(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


BOTTOM = ("jdfa.rules", "jdfa.net", "jdfa.losses")


@pytest.mark.parametrize("name", sorted(m for m in MODULES if _is(m, BOTTOM)))
def test_the_bottom_layer_knows_no_net_step_or_driver(name):
    above = sorted(m for m in _reachable(name) if _is(m, (*NETS, "jdfa.step", "jdfa.driver")))
    assert not above, f"{name} reaches {above}"


@pytest.mark.parametrize("name", sorted(m for m in MODULES if _is(m, NETS)))
def test_nets_know_neither_the_step_nor_the_driver(name):
    above = sorted(m for m in _reachable(name) if _is(m, ("jdfa.step", "jdfa.driver")))
    assert not above, f"{name} reaches {above}"


def test_the_step_knows_no_driver():
    assert not [m for m in _reachable("jdfa.step") if _is(m, ("jdfa.driver",))]
