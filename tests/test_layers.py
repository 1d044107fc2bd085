"""The code's layers, checked from the source with `ast` so they stay one-way:
no import cycles between project modules, `moderation`'s models and services import
nothing from `labelers`, no import hidden inside a function (where it usually hides a
cycle), and the benchmarks import no test modules."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "lib", "moderation", "labelers", "audit", "testkit", "tests")
# Where Django needs imports at call time: AppConfig.ready (models are not loaded before).
ALLOWED_LOCAL_IMPORTS = {
    ("moderation/apps.py", "ready"),
    ("labelers/apps.py", "ready"),
    ("audit/apps.py", "ready"),
}


def project_files() -> dict[str, Path]:
    """Module name -> file, for every project module outside migrations."""
    found = {"conftest": ROOT / "conftest.py", "dev": ROOT / "dev.py"}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def parsed(path: Path) -> ast.Module:
    """The file's syntax tree, parsed once per file version for all the tests here (each
    parsed every file again: ~10 s a test on a loaded 2-core machine). Read-only."""
    return _parsed(path, path.stat().st_mtime_ns)


@functools.cache
def _parsed(path: Path, mtime_ns: int) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def imported_modules(tree: ast.AST, modules: set[str], *, package: str) -> set[str]:
    """Project modules a module imports: `from a import b` counts as a.b when that is a
    module, else as a."""
    found: set[str] = set()

    def add(name: str) -> None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            for alias in node.names:
                full = f"{base}.{alias.name}"
                add(full if full in modules else base)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (a fresh copy for each caller)."""
    files = project_files()
    versions = tuple(sorted((name, path.stat().st_mtime_ns) for name, path in files.items()))
    return {name: set(targets) for name, targets in _import_graph(versions).items()}


@functools.cache
def _import_graph(versions: tuple) -> dict[str, set[str]]:
    files = project_files()
    modules = set(files)
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = parsed(path)
        graph[name] = imported_modules(tree, modules, package=package) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_project_modules():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_moderation_models_and_services_import_nothing_from_labelers():
    graph = import_graph()
    modules = [m for m in graph if m == "moderation.models" or m.startswith("moderation.services")]
    assert "moderation.services.verdicts" in modules
    for module in modules:
        assert not {m for m in graph[module] if m.startswith("labelers")}, module


def test_labelers_depend_on_moderation_not_the_other_way():
    graph = import_graph()
    assert "moderation.services.verdicts" in graph["labelers.verdict"]
    back = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith("moderation.")
        and not module.startswith(("moderation.tests", "moderation.management"))
        # pages: the outer layer
        and not module.startswith(("moderation.views", "moderation.admin", "moderation.urls"))
        for target in targets
        if target.startswith("labelers")
    }
    assert back == set()


def test_only_the_tasks_modules_send_celery_messages():
    senders = set()
    for name, path in project_files().items():
        if name.startswith(("tests", "testkit", "conftest")) or ".tests" in name:
            continue
        source = path.read_text()
        if any(call in source for call in (".apply_async(", ".delay(", "send_task(")):
            senders.add(name)
    assert senders == {"labelers.tasks", "moderation.tasks"}


def test_no_import_inside_a_function_body():
    hidden = []
    for path in project_files().values():
        relative = str(path.relative_to(ROOT))
        tree = parsed(path)
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if (relative, function.name) in ALLOWED_LOCAL_IMPORTS:
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    hidden.append(f"{relative}:{node.lineno} in {function.name}()")
    assert hidden == []


def test_benchmarks_import_no_test_modules():
    for path in (ROOT / "bench").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert ".tests" not in name and name != "conftest", f"{path.name}: {name}"


# labelers reach moderation's writes through one door; pages and admin (the outer layer) and
# tests may use any service. The one exception: a new source is created by moderation's own
# service (sources.source_create), with the labelers it routes to (criteria.source_setup).
DOOR = "moderation.services.verdicts"
DOOR_EXCEPTIONS = {("labelers.criteria", "moderation.services.sources")}


def test_labelers_write_to_moderation_only_through_the_verdict_door():
    graph = import_graph()
    through = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith("labelers.")
        and not module.startswith(("labelers.tests", "labelers.views", "labelers.admin"))
        for target in targets
        if target.startswith("moderation.services.") and target != DOOR
    }
    assert through == DOOR_EXCEPTIONS
    assert DOOR in graph["labelers.dispatch"] and DOOR in graph["labelers.verdict"]


def test_config_and_lib_import_no_app():
    graph = import_graph()
    found = {
        (module, target)
        for module, targets in graph.items()
        if module.split(".")[0] in ("config", "lib")
        for target in targets
        if target.split(".")[0] in ("moderation", "labelers")
    }
    assert found == set()


def test_the_audit_log_imports_no_app():
    """Every app records into the audit log (audit_record); the log knows none of them."""
    graph = import_graph()
    assert "audit.services" in graph["moderation.services.decisions"]
    found = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith("audit.") and not module.startswith("audit.tests")
        for target in targets
        if target.split(".")[0] in ("moderation", "labelers")
    }
    assert found == set()


def test_every_task_keeps_its_name_on_the_wire_and_a_task_suffix_in_code():
    """Queued messages and beat's schedule name tasks by their wire name: `name=` says it,
    whatever the function is called."""
    tasks = []
    for module in ("labelers.tasks", "moderation.tasks"):
        tree = parsed(project_files()[module])
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef):
                continue
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", "") == (
                    "shared_task"
                ):
                    names = [k.value.value for k in decorator.keywords if k.arg == "name"]
                    tasks.append((node.name, names))
    # 8, bank_retro_match (issue 28), label_fetch_batch (issue 24), quality_rollups,
    # decided_rollups, retention_purge, erasure_run, erasure_sweep, dashboard_rollups and
    # queue_snapshot (issue 27), items_reroute (issue 29)
    assert len(tasks) == 18
    for function, names in tasks:
        assert function.endswith("_task"), function
        assert len(names) == 1 and names[0].rpartition(".")[2] == function.removesuffix("_task")
