"""One room per concern, checked in code (in the manner of Polar's `server/scripts/linters/`).

AST walks over `common/` and `services/` (not tests, bench or migrations):

1. `.commit()` only at the boundary that owns the unit of work: jobs, HTTP routes and their
   app/lifespan modules, CLI commands. Everything else works in the session it is given. A piece
   that is its own unit of work by design (a token refresh, the feed's drainer) opens a transaction
   scope (`async with factory.begin() as session:`) and says why in its docstring ("own unit of
   work"), so that every commit is found either at a boundary or under that phrase.
2. SQL text only in `common/db/repositories/`: no `text(...)` and no SQL statement literals.
3. No import cycle among the project's modules, counting imports under `if TYPE_CHECKING:` and
   imports inside functions; nor among the packages of `common/` (db, whoop, sync, feed …).
4. No event listener registered at import time, nor on a class (process-wide): a listener is
   attached to the object it concerns (an engine, a session factory) by the code that made it.

Each check fails with every offender as `path:line: what`. What a rule still lets through is
named in its allow-list below, with why; an entry that no longer matches anything fails too.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "services")

# Modules that own a unit of work and may commit it (paths relative to the repository).
COMMIT_BOUNDARIES = (
    "common/*/jobs.py",  # arq jobs and crons (`common/feed/jobs.py`)
    "common/*/jobs/*.py",  # arq jobs and crons by concern (`common/sync/jobs/events.py`, …)
    "services/worker/*.py",  # the worker's job and cron wrappers
    "services/*/routes/*.py",  # HTTP routes
    "services/*/*/routes.py",  # HTTP routes of a sub-application (the console)
    "services/*/app.py",  # an app's own routes and its lifespan
    "services/commands/*.py",  # CLI commands
    # The smart read's refresh: a task of its own that concurrent requests for the same data
    # share (so that one hanging up cancels nobody's fetch); no one request owns its write.
    "services/api/reads.py",
)
SQL_HOME = "common/db/repositories/*"
# What starts an SQL statement (upper case, as the project writes SQL; "DELETE" alone is HTTP).
SQL_STATEMENT = re.compile(
    r"""^\s*(
        SELECT\s+\S | INSERT\s+INTO\b | UPDATE\s+\w+\s+SET\b | DELETE\s+FROM\b
        | WITH\s+(RECURSIVE\s+)?\w+\s+AS\b | LOCK\s+TABLE\b | PRAGMA\s+\w
        | (BEGIN|COMMIT|ROLLBACK)(\s+\w+)?\s*;?\s*$ | (SAVEPOINT|RELEASE)\s+\w
        | (CREATE|DROP|ALTER)\s+(TABLE|INDEX|UNIQUE|VIEW|SEQUENCE|SCHEMA|EXTENSION)\b
        | TRUNCATE\s+\w | SET\s+(LOCAL\s+|SESSION\s+)?\w+\s*(=|TO\b) | VACUUM\b | ANALYZE\b
        | (NOTIFY|LISTEN)\s+\w
    )""",
    re.VERBOSE,
)
# Functions of `sqlalchemy` that take SQL as text.
SQL_TEXT_FUNCTIONS = {"text", "exec_driver_sql"}
# What a docstring says of a transaction scope opened outside a boundary.
OWN_UNIT = "own unit of work"

# Offenders still let through, by file (or, for cycles, by the modules of the cycle), with why
# (none today; an entry names what it lets through and the reason, in one line).
COMMITS_ALLOWED: dict[str, str] = {}
SQL_ALLOWED: dict[str, str] = {}
CYCLES_ALLOWED: dict[frozenset[str], str] = {}
LISTENERS_ALLOWED: dict[str, str] = {}


@dataclass(frozen=True)
class Module:
    """One source file of the project."""

    name: str  # dotted: common.sync.jobs
    rel: str  # path from the repository root: common/sync/jobs.py
    tree: ast.Module
    is_package: bool


def _modules(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> list[Module]:
    found = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root)
            parts = list(rel.with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            tree = ast.parse(path.read_text(), str(rel))
            found.append(Module(".".join(parts), rel.as_posix(), tree, is_package))
    return found


def _matches(rel: str, patterns: tuple[str, ...] | str) -> bool:
    patterns = (patterns,) if isinstance(patterns, str) else patterns
    return any(fnmatch(rel, p) for p in patterns)


# 1. Commits ------------------------------------------------------------------------------------


def _line(offender: str) -> tuple[str, int]:
    path, line, _ = offender.split(":", 2)
    return path, int(line)


def _sorted(offenders: list[str] | set[str]) -> list[str]:
    return sorted(set(offenders), key=_line)


def _functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _own_nodes(function: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a function's body, not those of the functions defined in it."""
    for child in ast.iter_child_nodes(function):
        if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield child
            yield from _own_nodes(child)


def commits_outside_boundaries(modules: list[Module]) -> list[str]:
    """`x.commit()` calls in modules that do not own a unit of work, and transaction scopes
    (`async with x.begin()`) there in a function whose docstring does not say it is its own
    unit of work."""
    found = []
    for m in modules:
        if _matches(m.rel, COMMIT_BOUNDARIES):
            continue
        for node in ast.walk(m.tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "commit"
            ):
                found.append(f"{m.rel}:{node.lineno}: {ast.unparse(node.func)}()")
        for function in _functions(m.tree):
            if OWN_UNIT in " ".join((ast.get_docstring(function) or "").split()):
                continue
            for node in _own_nodes(function):
                if isinstance(node, ast.AsyncWith | ast.With):
                    for item in node.items:
                        call = item.context_expr
                        if (
                            isinstance(call, ast.Call)
                            and isinstance(call.func, ast.Attribute)
                            and call.func.attr == "begin"
                        ):
                            found.append(
                                f"{m.rel}:{node.lineno}: {ast.unparse(call)} in {function.name}, "
                                f"whose docstring does not say why it is its {OWN_UNIT}"
                            )
    return _sorted(found)


# 2. SQL text -----------------------------------------------------------------------------------


def _docstrings(tree: ast.Module) -> set[int]:
    """The ids of the docstring nodes of a module, its classes and functions."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _text_names(tree: ast.Module) -> set[str]:
    """Local names bound to `sqlalchemy.text` (`from sqlalchemy import text as sql`)."""
    return {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy")
        for alias in node.names
        if alias.name in SQL_TEXT_FUNCTIONS
    }


def sql_outside_repositories(modules: list[Module]) -> list[str]:
    """`text(...)` calls and SQL statement literals outside `common/db/repositories/`."""
    found = []
    for m in modules:
        if _matches(m.rel, SQL_HOME):
            continue
        docstrings, names = _docstrings(m.tree), _text_names(m.tree)
        for node in ast.walk(m.tree):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if (isinstance(func, ast.Name) and called in names) or (
                    isinstance(func, ast.Attribute) and called in SQL_TEXT_FUNCTIONS
                ):
                    found.append(f"{m.rel}:{node.lineno}: {ast.unparse(node)[:60]}")
            elif isinstance(node, ast.JoinedStr):
                head = node.values[0] if node.values else None
                if isinstance(head, ast.Constant) and SQL_STATEMENT.match(str(head.value)):
                    found.append(f"{m.rel}:{node.lineno}: f-string SQL {str(head.value)[:40]!r}")
            elif (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings
                and SQL_STATEMENT.match(node.value)
            ):
                found.append(f"{m.rel}:{node.lineno}: SQL literal {node.value[:40]!r}")
    # A `text("SELECT 1")` is a call and a literal: report each line once.
    first: dict[tuple[str, int], str] = {}
    for offender in found:
        first.setdefault(_line(offender), offender)
    return _sorted(list(first.values()))


# 3. Import cycles ------------------------------------------------------------------------------


def _imported(m: Module, node: ast.Import | ast.ImportFrom, known: set[str]) -> Iterator[str]:
    """The project modules an import statement loads (a `from pkg import mod` loads pkg.mod)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name in known:
                yield alias.name
        return
    if node.level:
        base = m.name.split(".") if m.is_package else m.name.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join([*base, node.module] if node.module else base)
    else:
        source = node.module or ""
    for alias in node.names:
        sub = f"{source}.{alias.name}"
        if sub in known:
            yield sub
        elif source in known:
            yield source


def _packages_run(importer: str, target: str, known: set[str]) -> list[str]:
    """The packages whose `__init__` importing `target` runs first: its parents, but for those
    of the importer (already imported before the importer runs)."""
    parts = target.split(".")
    own = {".".join(importer.split(".")[:n]) for n in range(1, importer.count(".") + 2)}
    parents = (".".join(parts[:n]) for n in range(1, len(parts)))
    return [p for p in parents if p in known and p not in own]


def import_graph(modules: list[Module]) -> dict[str, dict[str, int]]:
    """module → {imported module → line of the first import}, every import statement counted
    (module level, under `if TYPE_CHECKING:`, inside functions), with the packages an import
    runs on its way (`import a.b.c` runs `a/b/__init__.py` first)."""
    known = {m.name for m in modules}
    graph: dict[str, dict[str, int]] = {m.name: {} for m in modules}
    for m in modules:
        for node in ast.walk(m.tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _imported(m, node, known):
                    for loaded in [*_packages_run(m.name, target, known), target]:
                        if loaded != m.name:
                            graph[m.name].setdefault(loaded, node.lineno)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def _a_cycle(graph: dict[str, dict[str, int]], component: list[str]) -> list[str]:
    """One closed path through a strongly connected component, starting at its first module."""
    members, start = set(component), component[0]
    path, seen = [start], {start}
    while True:
        here = path[-1]
        nxt = sorted(w for w in graph[here] if w in members)
        if start in nxt and len(path) > 1:
            return [*path, start]
        fresh = [w for w in nxt if w not in seen]
        if not fresh:  # a dead end within the component: close through the shortest way back
            return [*path, *_shortest(graph, here, start, members)[1:]]
        path.append(fresh[0])
        seen.add(fresh[0])


def _shortest(graph: dict[str, dict[str, int]], a: str, b: str, members: set[str]) -> list[str]:
    paths, frontier = {a: [a]}, [a]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w in members and w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        if b in paths:
            return paths[b]
        frontier = nxt
    return [a, b]


def _reports(
    graph: dict[str, dict[str, int]], where: dict[str, str]
) -> list[tuple[frozenset[str], str]]:
    """Each cycle: its members, and one closed path through it with the imports (file:line)."""
    report = []
    for component in cycles(graph):
        path = _a_cycle(graph, component)
        steps = ", ".join(f"{where[a]}:{graph[a][b]} → {b}" for a, b in itertools.pairwise(path))
        report.append((frozenset(component), f"cycle among {', '.join(component)}: {steps}"))
    return report


def import_cycles(modules: list[Module]) -> list[str]:
    """Each cycle among modules, with the imports of one closed path through it."""
    graph = import_graph(modules)
    return [
        text
        for members, text in _reports(graph, {m.name: m.rel for m in modules})
        if members not in CYCLES_ALLOWED
    ]


Evidence = dict[tuple[str, str], str]


def package_graph(modules: list[Module]) -> tuple[dict[str, dict[str, int]], Evidence]:
    """Imports between the packages of `common/` (`common.sync` → `common.feed`), each step with
    one import that makes it: (package → {package → line}, (package, package) → file)."""
    packages = {m.name for m in modules if m.is_package and m.name.count(".") == 1}

    def package(name: str) -> str | None:
        top = ".".join(name.split(".")[:2])
        return top if top in packages else None

    rel = {m.name: m.rel for m in modules}
    graph: dict[str, dict[str, int]] = {p: {} for p in packages}
    evidence: dict[tuple[str, str], str] = {}
    for a, targets in import_graph(modules).items():
        for b, line in targets.items():
            pa, pb = package(a), package(b)
            if pa and pb and pa != pb and pb not in graph[pa]:
                graph[pa][pb] = line
                evidence[(pa, pb)] = rel[a]
    return graph, evidence


def package_cycles(modules: list[Module]) -> list[str]:
    """Each cycle among the packages of `common/`, with one importing file per step."""
    graph, evidence = package_graph(modules)
    found = []
    for component in cycles(graph):
        if frozenset(component) in CYCLES_ALLOWED:
            continue
        path = _a_cycle(graph, component)
        steps = ", ".join(
            f"{evidence[a, b]}:{graph[a][b]} → {b}" for a, b in itertools.pairwise(path)
        )
        found.append(f"cycle among {', '.join(component)}: {steps}")
    return found


# 4. Event listeners ----------------------------------------------------------------------------

LISTEN = {"listen", "listens_for"}


def _is_listen(call: ast.Call) -> bool:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in LISTEN


def _is_class_like(target: ast.expr) -> bool:
    """A target named like a class (`Session`, `orm.Mapper`): a listener on it is process-wide."""
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
    return bool(name) and name[0].isupper()


def listeners_at_import_or_on_classes(modules: list[Module]) -> list[str]:
    """`event.listen(...)` / `@event.listens_for(...)` run at import time (module or class body,
    decorators of module-level functions), or anywhere on a class."""
    found = []
    for m in modules:
        at_import = {id(n) for n in _import_time_nodes(m.tree) if isinstance(n, ast.Call)}
        for node in ast.walk(m.tree):
            if not (isinstance(node, ast.Call) and _is_listen(node)):
                continue
            if id(node) in at_import:
                found.append(f"{m.rel}:{node.lineno}: {ast.unparse(node)[:60]} (at import time)")
            elif node.args and _is_class_like(node.args[0]):
                found.append(f"{m.rel}:{node.lineno}: {ast.unparse(node)[:60]} (on a class)")
    return _sorted(found)


def _import_time_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """The nodes evaluated when the module is imported: everything but function bodies (a
    function's decorators and defaults are evaluated at its definition)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            outer: list[ast.AST] = [*getattr(child, "decorator_list", []), child.args]
            for part in outer:
                yield part
                yield from _import_time_nodes(part)
            continue
        yield child
        yield from _import_time_nodes(child)


# The tests -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def modules() -> list[Module]:
    return _modules()


def _fail_with(offenders: list[str], rule: str, allowed: dict[str, str] | None = None) -> None:
    left = [o for o in offenders if allowed is None or _line(o)[0] not in allowed]
    assert not left, f"{rule}:\n" + "\n".join(f"  {o}" for o in left)
    if allowed:
        stale = sorted(set(allowed) - {_line(o)[0] for o in offenders})
        assert not stale, f"allowed but no longer offending (take them off the list): {stale}"


def test_commits_only_at_job_route_and_command_boundaries(modules: list[Module]) -> None:
    _fail_with(
        commits_outside_boundaries(modules),
        "commit outside a job, route or command (take the caller's session; the boundary "
        f"commits), or a transaction scope whose function does not say it is its {OWN_UNIT}",
        COMMITS_ALLOWED,
    )


def test_sql_text_only_in_repositories(modules: list[Module]) -> None:
    _fail_with(
        sql_outside_repositories(modules),
        "SQL outside common/db/repositories (move it into a repository method)",
        SQL_ALLOWED,
    )


def test_no_import_cycles(modules: list[Module]) -> None:
    _fail_with(import_cycles(modules), "import cycle")


def test_no_import_cycles_among_commons_packages(modules: list[Module]) -> None:
    _fail_with(package_cycles(modules), "import cycle between packages of common/")


def test_cycle_allow_list_is_current(modules: list[Module]) -> None:
    graph = import_graph(modules)
    seen = {frozenset(c) for c in cycles(graph)} | {
        frozenset(c) for c in cycles(package_graph(modules)[0])
    }
    stale = [sorted(c) for c in CYCLES_ALLOWED if c not in seen]
    assert not stale, f"allowed but no longer a cycle (take them off the list): {stale}"


def test_no_listener_at_import_time_or_on_a_class(modules: list[Module]) -> None:
    _fail_with(
        listeners_at_import_or_on_classes(modules),
        "event listener registered at import time or process-wide on a class",
        LISTENERS_ALLOWED,
    )


# The checks see what they are meant to see -----------------------------------------------------


def _sample(tmp_path: Path, files: dict[str, str]) -> list[Module]:
    for rel, source in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return _modules(tmp_path)


def test_commit_check_sees_helper_commits_and_unexplained_scopes_and_spares_a_job(
    tmp_path: Path,
) -> None:
    found = commits_outside_boundaries(
        _sample(
            tmp_path,
            {
                "common/sync/helper.py": "async def f(s):\n    await s.commit()\n",
                "common/sync/jobs.py": "async def j(s):\n    await s.commit()\n",
                "services/api/routes/x.py": "async def r(s):\n    await s.commit()\n",
                "common/sync/unit.py": (
                    "async def ok(f):\n"
                    '    """Its own unit of\n    work, by design."""\n'
                    "    async with f.begin() as s:\n"
                    "        pass\n"
                    "async def bare(f):\n"
                    "    async with f.begin() as s:\n"
                    "        pass\n"
                ),
            },
        )
    )
    assert [f.split(": ")[0] for f in found] == ["common/sync/helper.py:2", "common/sync/unit.py:7"]


def test_sql_check_sees_text_and_statement_literals(tmp_path: Path) -> None:
    source = (
        '"""SELECT in a docstring is prose."""\n'
        "from sqlalchemy import text as sql\n"
        "a = sql('x')\n"
        "b = 'SELECT pg_advisory_lock(1)'\n"
        "c = f'DELETE FROM t WHERE id = {1}'\n"
        "d = 'DELETE'\n"
        "e = sa.text('y')\n"
    )
    found = sql_outside_repositories(
        _sample(
            tmp_path,
            {
                "common/x.py": source,
                "common/db/repositories/ok.py": "from x import *\nq = 'SELECT 1'\n",
            },
        )
    )
    assert [f.split(":")[1] for f in found] == ["3", "4", "5", "7"]


def test_cycle_check_sees_type_checking_function_and_package_imports(tmp_path: Path) -> None:
    found = import_cycles(
        _sample(
            tmp_path,
            {
                "common/__init__.py": "",
                "common/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from common import b\n",
                "common/b.py": "def f():\n    from common.c import x\n",
                "common/c.py": "from .a import y\n",
                "common/d.py": "import common.a\n",
                "common/p/__init__.py": "from common.p.x import y\n",
                "common/p/x.py": "from common.p.z import w\nfrom common.q import v\n",
                "common/p/z.py": "",
                "common/q.py": "from common.p.z import w\n",
            },
        )
    )
    assert found == [
        "cycle among common.a, common.b, common.c: "
        "common/a.py:3 → common.b, common/b.py:2 → common.c, common/c.py:1 → common.a",
        # common.q's import of common.p.z runs common/p/__init__.py, which imports common.p.x.
        "cycle among common.p, common.p.x, common.q: "
        "common/p/__init__.py:1 → common.p.x, common/p/x.py:2 → common.q, common/q.py:1 → common.p",
    ]


def test_listener_check_sees_class_and_import_time_listeners(tmp_path: Path) -> None:
    source = (
        "from sqlalchemy import event\n"
        "from sqlalchemy.orm import Session\n"
        "@event.listens_for(Session, 'after_commit')\n"
        "def f(s): ...\n"
        "event.listen(engine, 'connect', f)\n"
        "def attach(factory, engine):\n"
        "    event.listen(factory, 'after_commit', f)\n"
        "    event.listen(Session, 'after_commit', f)\n"
    )
    found = listeners_at_import_or_on_classes(_sample(tmp_path, {"common/x.py": source}))
    assert [f.split(":")[1] for f in sorted(found)] == ["3", "5", "8"]
