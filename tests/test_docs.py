"""The code layout in docs/development.md is generated from the modules' own docstrings,
so it lists every module: ``python -m tests.test_docs`` rewrites it, this test fails when
it is stale."""
from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("jobs", "ser_lib", "training")
PAGE = REPO / "docs" / "development.md"
BLOCK = re.compile(r"(<!-- layout:begin -->\n)(.*?)(<!-- layout:end -->)", re.S)


def layout() -> str:
    """A table of every module of the packages: its path and its docstring's first sentence."""
    rows = ["| module | what it does |", "|---|---|"]
    for pkg in PACKAGES:
        for f in sorted((REPO / pkg).rglob("*.py")):
            if f.name == "__init__.py" and f.stat().st_size == 0:
                continue
            doc = ast.get_docstring(ast.parse(f.read_text())) or ""
            first = " ".join(doc.split("\n\n", 1)[0].split())
            first = first.split(". ", 1)[0].rstrip(".").replace("|", "\\|")
            rows.append(f"| `{f.relative_to(REPO).as_posix()}` | {first} |")
    return "\n".join(rows) + "\n"


def test_the_layout_lists_every_module_as_it_is():
    m = BLOCK.search(PAGE.read_text())
    assert m, "docs/development.md has no layout block"
    assert m.group(2) == layout(), "docs/development.md's layout is stale: python -m tests.test_docs"


def test_every_module_says_what_it_does():
    missing = [r for r in layout().splitlines()[2:] if r.endswith("|  |")]
    assert not missing, missing


if __name__ == "__main__":
    text = PAGE.read_text()
    PAGE.write_text(BLOCK.sub(lambda m: m.group(1) + layout() + m.group(3), text))
    print(f"wrote the layout of {PAGE.relative_to(REPO)}")


def _is_submodule(mod, name: str) -> bool:
    return hasattr(mod, "__path__") and importlib.util.find_spec(f"{mod.__name__}.{name}") is not None


def test_every_run_record_script_reruns_or_names_the_commit_it_ran_against():
    """A models/runs/ script either imports only names that exist today, or says at its top
    which commit it ran against."""
    import importlib
    stale = []
    for f in sorted((REPO / "models" / "runs").rglob("*.py")):
        tree = ast.parse(f.read_text())
        doc = ast.get_docstring(tree) or ""
        missing = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                try:
                    mod = importlib.import_module(node.module)
                except ImportError as err:
                    missing.append(f"{node.module} ({err})")
                    continue
                missing += [f"{node.module}.{a.name}" for a in node.names if not hasattr(mod, a.name)
                            and not _is_submodule(mod, a.name)]
        if missing and not re.search(r"Ran against commit [0-9a-f]{7,40}", doc):
            stale.append((f.relative_to(REPO).as_posix(), missing))
    assert not stale, stale
