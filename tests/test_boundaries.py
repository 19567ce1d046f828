"""Layer boundaries, checked in code: services never import each other, common never imports
services, and the simulator shares no code with the WHOOP client or the sync service."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ["webhook", "api", "worker", "simulator"]


def _imports(package: Path) -> set[str]:
    found: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
    return found


def test_services_never_import_each_other() -> None:
    for service in SERVICES:
        others = {f"services.{o}" for o in SERVICES if o != service}
        bad = {
            m
            for m in _imports(ROOT / "services" / service)
            if m.split(".")[0:2] and ".".join(m.split(".")[:2]) in others
        }
        assert not bad, f"services/{service} imports {sorted(bad)}"


def test_common_never_imports_services() -> None:
    bad = {m for m in _imports(ROOT / "common") if m.split(".")[0] == "services"}
    assert not bad, f"common imports {sorted(bad)}"


def test_simulator_shares_no_code_with_client_or_sync() -> None:
    bad = {
        m
        for m in _imports(ROOT / "services" / "simulator")
        if m.startswith(("common.whoop", "common.sync", "common.db"))
    }
    assert not bad, f"the simulator imports {sorted(bad)}"


def test_boundary_check_sees_a_violation(tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text("from services.api.app import create_app\n")
    assert "services.api.app" in _imports(tmp_path)
