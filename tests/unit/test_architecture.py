"""DESIGN.md's import rules, enforced on the source tree with the AST (every import statement,
including those inside functions). A planted forbidden import proves the check can fail."""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

DEVICE_LIBS = ("smartcard", "serial", "escpos", "cups", "usb")
WEB_DB_LIBS = ("fastapi", "uvicorn", "psycopg", "starlette", "jinja2")

#: package → (what it may import from the project, third-party modules it must not import).
#: Project imports are matched by dotted prefix; anything of the project not allowed is forbidden.
RULES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "kiosk": (("kiosk",), ("kivy", "requests", *DEVICE_LIBS, *WEB_DB_LIBS)),
    "drivers": (("drivers", "kiosk.ports", "kiosk.errors", "kiosk.config", "kiosk.registry", "kiosk.i18n"),
                ("kivy",)),
    "screens": (("screens", "kiosk.engine", "kiosk.ports", "kiosk.errors", "kiosk.config", "kiosk.i18n",
                 "kiosk.credential"),
                ("requests", *DEVICE_LIBS, *WEB_DB_LIBS)),
    "sync": (("sync", "kiosk.ports", "kiosk.errors", "kiosk.config", "kiosk.registry", "kiosk.journal"),
             ("kivy", *DEVICE_LIBS)),
    "cityhall": (("cityhall", "sync", "kiosk.config", "kiosk.errors", "kiosk.journal.chain", "kiosk.i18n"),
                 ("kivy", *DEVICE_LIBS)),
}
PROJECT = ("kiosk", "drivers", "screens", "sync", "cityhall")
#: The one composition root may import everything (kioskctl and the CLI reach devices through it).
COMPOSITION_ROOT = ("kiosk/compose/",)


def violations(root: Path) -> list[str]:
    problems = []
    for package, (allowed, banned_libs) in RULES.items():
        for path in sorted((root / package).rglob("*.py")) if (root / package).is_dir() else []:
            rel = path.relative_to(root).as_posix()
            if rel.startswith(COMPOSITION_ROOT):
                continue
            for lineno, module in imported_modules(root, path):
                top = module.split(".")[0]
                if top in PROJECT and not any(module == a or module.startswith(a + ".") for a in allowed):
                    problems.append(f"{rel}:{lineno}: {package} must not import {module}")
                if top in banned_libs:
                    problems.append(f"{rel}:{lineno}: {package} must not import {top}")
    return problems


def imported_modules(root: Path, path: Path) -> list[tuple[int, str]]:
    rel = path.relative_to(root)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package_parts = list(rel.with_suffix("").parts[:-1])
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module in PROJECT:  # "from kiosk import engine" imports kiosk.engine
                found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, module))
    return found


def test_the_tree_follows_the_import_rules() -> None:
    assert violations(ROOT) == []


@pytest.mark.parametrize("package, relpath, source, expected", [
    ("kiosk", "kiosk/engine/planted.py", "import drivers.card.pcsc\n", "kiosk must not import drivers.card.pcsc"),
    ("kiosk", "kiosk/planted.py", "def f():\n    import smartcard\n", "kiosk must not import smartcard"),
    ("drivers", "drivers/card/planted.py", "from sync import signing\n", "drivers must not import sync.signing"),
    ("drivers", "drivers/card/planted.py", "from kiosk.engine import Engine\n", "must not import kiosk.engine"),
    ("screens", "screens/planted.py", "import serial\n", "screens must not import serial"),
    ("screens", "screens/planted.py", "from drivers.sim import pki\n", "screens must not import drivers.sim"),
    ("sync", "sync/planted.py", "import kivy\n", "sync must not import kivy"),
    ("cityhall", "cityhall/planted.py", "from kiosk.engine.machine import Engine\n", "must not import kiosk.engine"),
    ("cityhall", "cityhall/planted.py", "from ..drivers import card\n", "cityhall must not import drivers.card"),
])
def test_a_planted_forbidden_import_is_caught(tmp_path: Path, package: str, relpath: str, source: str,
                                              expected: str) -> None:
    for name in PROJECT:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    assert violations(tmp_path) == []
    planted = tmp_path / relpath
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_text(source)
    found = violations(tmp_path)
    assert any(expected in line for line in found), found


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_cycles(root: Path, package: str) -> list[list[str]]:
    """Import cycles among ``package``'s own modules (every import statement, also inside functions;
    ``from pkg import name`` counts as importing the submodule ``pkg.name`` when that module exists)."""
    modules = {module_name(root, p): p for p in sorted((root / package).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for _, imported in imported_modules(root, path):
            while imported and imported not in modules:  # "from cityhall import x" when x is not a module
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path_stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path_stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path_stack[path_stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path_stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_nothing_in_cityhall_imports_in_a_circle() -> None:
    assert import_cycles(ROOT, "cityhall") == []


def test_request_authentication_is_one_module_the_routes_import() -> None:
    for rel in ("cityhall/app.py", "cityhall/ingest.py"):
        imported = {m for _, m in imported_modules(ROOT, ROOT / rel)}
        assert "cityhall.requestauth" in imported, rel


def test_a_planted_import_cycle_is_caught(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "cityhall", tmp_path / "cityhall", ignore=shutil.ignore_patterns("__pycache__"))
    assert import_cycles(tmp_path, "cityhall") == []
    # the shape the authentication had before it moved out of app.py: ingest imports app, app imports ingest
    ingest = tmp_path / "cityhall" / "requestauth.py"
    ingest.write_text(ingest.read_text() + "\n\ndef _planted():\n    from cityhall import app\n")
    cycles = import_cycles(tmp_path, "cityhall")
    assert any("cityhall.app" in c and "cityhall.requestauth" in c for c in cycles), cycles


def test_the_composition_root_may_import_drivers() -> None:
    source = (ROOT / "kiosk" / "compose" / "__init__.py").read_text()
    assert "drivers.card.pcsc" in source
