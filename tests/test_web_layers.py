"""The chat is an adapter: app.py only starts `rag.web`, and nothing in the library imports the
web adapter or Gradio (imports run one way: library -> adapters)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    """The modules `path` imports, relative ones made absolute (rag.x.y)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            out.add(module)
            out |= {f"{module}.{a.name}" for a in node.names}
    return out


def test_app_py_only_starts_the_web_adapter():
    text = (ROOT / "app.py").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 40
    assert _imports(ROOT / "app.py") <= {"sys", "rag.web.launch", "rag.web.launch.main"}


def test_the_library_never_imports_the_web_adapter_or_gradio():
    for path in sorted((ROOT / "rag").rglob("*.py")):
        if path.parent == ROOT / "rag" / "web":
            continue
        bad = {m for m in _imports(path) if m == "rag.web" or m.startswith(("rag.web.", "gradio"))}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
