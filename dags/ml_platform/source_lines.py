"""Where in a DAG file a DAG or a task is defined, found in its syntax tree.

Airflow does not record the line an operator was created on, and messages must name it, so
the DAG checks and the cluster policies look it up here: the DAG constructor (`DAG(...)`,
`with DAG(...)`, `@dag(...)`, a platform DAG factory such as `training_dag(...)`) by dag_id,
a task by its task_id literal, the first argument of a platform factory
(`container_task("train", ...)`) or its TaskFlow function's name.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

# Platform factories whose first argument is the task_id.
TASK_FACTORIES = frozenset({"container_task", "mapped_container_task", "wait_for_partition"})
# Platform factories that build a whole DAG (dag_id=..., schedule=..., catchup=... keywords):
# a DAG's messages point at their call, since its tasks are created inside the factory.
DAG_FACTORIES = frozenset({"training_dag"})
_REUSED_TASKFLOW_SUFFIX = re.compile(r"__\d+$")


@dataclass(frozen=True)
class DagCall:
    """One DAG constructor or @dag decorator in a file."""

    node: ast.Call | ast.expr
    line: int
    dag_id: str | None
    keywords: frozenset[str]
    is_decorator: bool


def callee_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def airflow_aliases(tree: ast.Module, names: set[str]) -> dict[str, str]:
    """Local name -> Airflow name for `from airflow... import <name> [as alias]`."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "airflow":
            for alias in node.names:
                if alias.name in names:
                    aliases[alias.asname or alias.name] = alias.name
    return aliases


def module_constants(tree: ast.Module) -> dict[str, str]:
    """Top-level `NAME = "text"` assignments, to resolve `dag_id=DAG_ID`."""
    constants: dict[str, str] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    constants[target.id] = node.value.value
    return constants


def _text(node: ast.expr | None, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def dag_calls(tree: ast.Module) -> list[DagCall]:
    """Every DAG constructor call and @dag decorator of the file, in source order."""
    aliases = airflow_aliases(tree, {"DAG", "dag"})
    constants = module_constants(tree)
    found: list[DagCall] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (
            aliases.get(callee_name(node.func) or "") == "DAG"
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "DAG")
        ):
            first = node.args[0] if node.args else None
            dag_id = _text(_keyword(node, "dag_id") or first, constants)
            keywords = frozenset(k.arg for k in node.keywords if k.arg)
            found.append(DagCall(node, node.lineno, dag_id, keywords, is_decorator=False))
        elif isinstance(node, ast.Call) and callee_name(node.func) in DAG_FACTORIES:
            dag_id = _text(_keyword(node, "dag_id"), constants)
            keywords = frozenset(k.arg for k in node.keywords if k.arg)
            found.append(DagCall(node, node.lineno, dag_id, keywords, is_decorator=False))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                call = decorator if isinstance(decorator, ast.Call) else None
                func = call.func if call else decorator
                if aliases.get(callee_name(func) or "") != "dag":
                    continue
                dag_id = (_text(_keyword(call, "dag_id"), constants) if call else None) or node.name
                keywords = frozenset(k.arg for k in call.keywords if k.arg) if call else frozenset()
                found.append(DagCall(decorator, decorator.lineno, dag_id, keywords, True))
    return sorted(found, key=lambda c: c.line)


def dag_line(tree: ast.Module, dag_id: str) -> int:
    """The line of the constructor of `dag_id`; the only one, or line 1 if unknown."""
    calls = dag_calls(tree)
    for call in calls:
        if call.dag_id == dag_id:
            return call.line
    return calls[0].line if len(calls) == 1 else 1


def _is_task_decorator(decorator: ast.expr) -> bool:
    func = decorator.func if isinstance(decorator, ast.Call) else decorator
    while isinstance(func, ast.Attribute):  # @task.branch, @task.short_circuit
        func = func.value
    return isinstance(func, ast.Name) and func.id == "task"


def task_line(tree: ast.Module, task_id: str, default: int) -> int:
    """The line that creates `task_id` (a TaskGroup prefix is ignored), else `default`."""
    short = _REUSED_TASKFLOW_SUFFIX.sub("", task_id.rsplit(".", 1)[-1])
    constants = module_constants(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            literal = _text(_keyword(node, "task_id"), constants)
            if literal in (task_id, short):
                return node.lineno
            if (
                callee_name(node.func) in TASK_FACTORIES
                and node.args
                and _text(node.args[0], constants) == short
            ):
                return node.lineno
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name == short
            and any(_is_task_decorator(d) for d in node.decorator_list)
        ):
            return node.lineno
    return default


@cache
def _parsed(path: str, mtime_ns: int) -> ast.Module | None:
    try:
        return ast.parse(Path(path).read_text(), path)
    except (OSError, SyntaxError, ValueError):
        return None


def parse_file(path: str) -> ast.Module | None:
    """The file's syntax tree (cached while the file is unchanged), None if unreadable."""
    try:
        mtime_ns = Path(path).stat().st_mtime_ns
    except OSError:
        return None
    return _parsed(path, mtime_ns)


def locate_dag(path: str | None, dag_id: str) -> tuple[str, int]:
    """(path, line) of a DAG's constructor, for messages raised at run time."""
    tree = parse_file(path) if path else None
    return (path or "<unknown file>", dag_line(tree, dag_id) if tree else 1)


def locate_task(path: str | None, dag_id: str, task_id: str) -> tuple[str, int]:
    """(path, line) of a task's creation, for messages raised at run time."""
    tree = parse_file(path) if path else None
    if tree is None:
        return path or "<unknown file>", 1
    return path or "<unknown file>", task_line(tree, task_id, dag_line(tree, dag_id))
