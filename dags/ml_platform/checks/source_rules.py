"""Rules read from a DAG file's source, where a parsed DAG cannot tell them apart.

A DAG object always has a schedule and a catchup value (Airflow's defaults fill them in), so
whether the author chose them is only visible in the constructor call. Code at module top
level runs on every parse, every 30 seconds, in the DAG processor: reading a Variable or a
Connection there costs a round trip to the API server each time.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from ml_platform.source_lines import airflow_aliases, callee_name, dag_calls
from ml_platform.violations import Finding, Violation

EXPLICIT_KEYWORDS = {
    "schedule": Violation(
        "MLP104",
        "the DAG constructor does not set schedule (Airflow's default may not be what you want)",
        "pass schedule='@daily' (a cron string, an Asset, or None for manual runs only)",
    ),
    "catchup": Violation(
        "MLP105",
        "the DAG constructor does not set catchup (True would backfill every run since start_date)",
        "pass catchup=False, or catchup=True when the DAG should run every missed interval",
    ),
}
READ_AT_RUN_TIME = (
    "read it inside a task (or a template such as '{{ var.value.name }}' / "
    "'{{ conn.my_conn.host }}'), which runs once per task instead of once per parse"
)


def explicit_keyword_findings(path: str, tree: ast.Module) -> list[Finding]:
    """MLP104/MLP105: schedule and catchup spelled out in each DAG constructor or @dag."""
    findings = []
    for call in dag_calls(tree):
        for keyword, violation in EXPLICIT_KEYWORDS.items():
            if keyword not in call.keywords:
                findings.append(violation.at(path, call.line))
    return findings


def _top_level_nodes(tree: ast.Module) -> Iterator[ast.AST]:
    """Every node that runs when the module is imported (not function or lambda bodies)."""
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                # Decorators and defaults run at import; the body does not.
                stack.extend(child.decorator_list if not isinstance(child, ast.Lambda) else [])
                stack.extend(child.args.defaults + [d for d in child.args.kw_defaults if d])
                continue
            stack.append(child)


def _describe_read(call: ast.Call, aliases: dict[str, str]) -> str | None:
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr == "get_connection":
        owner = callee_name(func.value) or "a hook"
        return f"{owner}.get_connection"
    owner = func.value if isinstance(func, ast.Attribute) else func
    name = aliases.get(owner.id) if isinstance(owner, ast.Name) else None
    if name == "Variable" and isinstance(func, ast.Attribute):
        return f"Variable.{func.attr}"
    if name == "Connection":
        return f"Connection.{func.attr}" if isinstance(func, ast.Attribute) else "Connection(...)"
    return None


def top_level_read_findings(path: str, tree: ast.Module) -> list[Finding]:
    """MLP106: Variable / Connection / get_connection called while the module is imported."""
    aliases = airflow_aliases(tree, {"Variable", "Connection"})
    findings = []
    for node in _top_level_nodes(tree):
        if isinstance(node, ast.Call) and (what := _describe_read(node, aliases)):
            findings.append(
                Violation(
                    "MLP106",
                    f"{what} runs at module top level, on every parse of the file",
                    READ_AT_RUN_TIME,
                ).at(path, node.lineno)
            )
    return findings


def source_findings(path: str, tree: ast.Module) -> list[Finding]:
    return explicit_keyword_findings(path, tree) + top_level_read_findings(path, tree)
