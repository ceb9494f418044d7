"""The package's import layering, read from the source (AST): lower layers never import higher ones,
units of one layer do not import each other, and no two files import each other (no cycles).

The layer order is written once, here. Deviations from the issue's order
(vocabulary < memory < channels, sparsity < integrations < studies < demo < commands/cli), with reasons:

* ``inputs`` (the one example-input check, a meta-device dry run) sits just above the vocabulary:
  the memory model, the loops and every pruner call it. ``_inputs``, its old name kept as a
  re-export, sits right above it (nothing of ours imports it).
* ``compat`` (host-library shims) sits with the vocabulary: it imports nothing of ours, and the
  base layer (archs, data, loops) needs BasicSR importable before it builds BasicSR archs/losses.
* a *base* layer between vocabulary and memory holds the independent building blocks every
  algorithm uses: reference nets (archs/), embedded data (data/), training loops, MACs counting,
  budget parsing.
* ``channels`` sits below ``sparsity``: the N:M pruners reuse the channel engine's model preparation
  (``channels.rules.reparam.fuse_reparam`` for re-parameterised blocks); channels never import sparsity.
* ``io`` (save/load of pruned models) sits above channels/sparsity: loading replays compactor
  insertion (channels) and the N:M plan.
* ``workloads`` (pretrained-weights cache, figures) sits below deploy/integrations, studies and
  demo, so the NNI trial and the studies share it without importing demo.
* the entry points come last: ``commands`` < ``cli``, ``train`` (BasicSR entry) and the package
  root, whose public names are imported lazily (its ``TYPE_CHECKING`` imports are not counted).

Imports under ``if TYPE_CHECKING:`` are ignored; function-local imports count like any other.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = "ir_prune_plugin"
ROOT = Path(__file__).resolve().parents[1] / PKG

#: bottom to top; a module may import its own unit and any unit of a lower layer
LAYERS: tuple[tuple[str, ...], ...] = (
    ("vocabulary", "tiling", "_version", "compat", "atomic"),   # atomic: file writes, imports nothing of ours
    ("inputs",),
    ("_inputs",),   # the old name of inputs, a re-export of it
    ("archs", "data", "loops", "macs", "budgets"),
    ("memory",),
    ("channels",),
    ("sparsity",),
    ("io",),
    ("workloads",),
    ("deploy", "integrations"),
    ("studies",),
    ("demo",),
    ("commands",),
    ("cli", "train", "__init__"),
)
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Import nodes of a tree, skipping ``if TYPE_CHECKING:`` bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports (``from . import x`` resolves to the submodule x)."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    out: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name == PKG or a.name.startswith(PKG + ".")}
            continue
        if node.level:
            base = package.split(".")
            base = base[:len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        elif node.module and (node.module == PKG or node.module.startswith(PKG + ".")):
            target = node.module
        else:
            continue
        subs = {f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known}
        out |= subs if subs and len(subs) == len(node.names) else subs | {target}
    return {m for m in out if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(name, path, known) for name, path in mods.items()}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_unit_has_a_layer() -> None:
    missing = sorted({_unit(m) for m in _modules()} - set(RANK))
    assert not missing, f"add these top-level modules/packages to LAYERS in {__file__}: {missing}"


def test_lower_layers_never_import_higher_ones() -> None:
    bad = []
    for mod, deps in _graph().items():
        for dep in deps:
            src, dst = _unit(mod), _unit(dep)
            if src != dst and RANK.get(dst, -1) >= RANK.get(src, -1):
                bad.append(f"{mod} ({src}, layer {RANK.get(src)}) imports {dep} ({dst}, layer {RANK.get(dst)})")
    assert not bad, "layering violations:\n" + "\n".join(sorted(bad))


def test_no_import_cycles() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("src, dst", [("ir_prune_plugin.memory.estimate", "ir_prune_plugin.channels.mosp")])
def test_the_checker_sees_a_violation(src: str, dst: str, tmp_path: Path) -> None:
    """The rules are not vacuous: an upward edge is reported by rank comparison."""
    assert RANK[_unit(dst)] > RANK[_unit(src)]
    assert _unit("ir_prune_plugin.channels.units") == "channels" and _unit(PKG) == "__init__"
    graph = _graph()
    assert "ir_prune_plugin.vocabulary" in graph["ir_prune_plugin.channels.compactor"]
    assert "ir_prune_plugin.sparsity.masks" in graph["ir_prune_plugin.sparsity.sls"]  # ``from . import masks``


def test_public_names_import() -> None:
    """The package root's 17 public names (imported lazily) all resolve."""
    import ir_prune_plugin

    assert len(ir_prune_plugin.__all__) == 17
    assert all(getattr(ir_prune_plugin, n) is not None for n in ir_prune_plugin.__all__)


def test_check_example_inputs_is_public_and_the_old_path_still_imports() -> None:
    from ir_prune_plugin import _inputs, inputs

    assert "check_example_inputs" in inputs.__all__ and _inputs.__all__ == inputs.__all__
    assert all(getattr(_inputs, n) is getattr(inputs, n) for n in inputs.__all__)
