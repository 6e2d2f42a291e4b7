"""Imports run one way: no import cycle in rag/, and the kernel (errors, types, text, config,
protocols, cachedir) imports nothing of the package above it. Read from the source with `ast`,
imports inside functions included: a lazy import is still a dependency."""
import ast
from pathlib import Path

RAG = Path(__file__).resolve().parent.parent / "rag"
KERNEL = {f"rag.{m}" for m in ("errors", "types", "text", "config", "protocols", "cachedir")}
# Edges kept on purpose, each with the reason and what ends it. Nothing else may point down-up.
ALLOWED: dict[tuple[str, str], str] = {}  # (importer, imported) -> why that upward edge is allowed


def _modules() -> dict[str, Path]:
    out = {}
    for f in sorted(RAG.rglob("*.py")):
        parts = f.relative_to(RAG.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of the package that `name` imports, anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            # `from . import claims` imports the module rag.claims; `from .x import f`, rag.x
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
            targets = subs if len(subs) == len(node.names) else [base, *subs]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), each as one cycle through
    its modules so the failure shows the path to break."""
    index, low, stack, on, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_path_through(graph, g) for g in groups]


def _path_through(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A cycle inside `group` from its first module back to it (breadth first: the shortest)."""
    start = min(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & group):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    return sorted(group)


def _without_allowed(graph):
    return {m: {t for t in targets if (m, t) not in ALLOWED} for m, targets in graph.items()}


def test_no_import_cycle_in_the_package():
    cycles = _cycles(_without_allowed(_graph()))
    assert not cycles, "import cycle(s): " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_kernel_imports_only_the_kernel():
    graph = _without_allowed(_graph())
    upward = sorted(f"{m} imports {t}" for m in KERNEL for t in graph.get(m, ()) if t not in KERNEL)
    assert not upward, "the kernel reaches up: " + "; ".join(upward)


def test_every_allowed_edge_is_still_there():
    """An exception that is no longer needed is removed, so the list never hides a new one."""
    graph = _graph()
    stale = sorted(f"{m} -> {t}" for m, t in ALLOWED if t not in graph.get(m, ()))
    assert not stale, f"remove from ALLOWED in {Path(__file__).name}: " + "; ".join(stale)


def test_the_check_finds_a_cycle_and_names_it():
    graph = {"rag.a": {"rag.b"}, "rag.b": {"rag.c"}, "rag.c": {"rag.a"}, "rag.d": {"rag.a"}}
    assert _cycles(graph) == [["rag.a", "rag.b", "rag.c", "rag.a"]]


def test_function_level_and_relative_imports_count(tmp_path):
    pkg = tmp_path / "rag"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import leaf\n")
    (pkg / "sub" / "leaf.py").write_text("def f():\n    from ..top import g\n    import rag.other\n")
    for name in ("top", "other"):
        (pkg / f"{name}.py").write_text("")
    modules = {"rag": pkg / "__init__.py", "rag.sub": pkg / "sub" / "__init__.py",
               "rag.sub.leaf": pkg / "sub" / "leaf.py", "rag.top": pkg / "top.py", "rag.other": pkg / "other.py"}
    assert _imports("rag.sub.leaf", modules["rag.sub.leaf"], modules) == {"rag.top", "rag.other"}
    assert _imports("rag.sub", modules["rag.sub"], modules) == {"rag.sub.leaf"}
