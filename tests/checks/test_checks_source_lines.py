"""Lines and source rules read from a DAG file's syntax tree, on the forms DAG files take."""

from __future__ import annotations

import ast
import textwrap

from ml_platform.checks.source_rules import source_findings
from ml_platform.source_lines import dag_calls, dag_line, task_line

SOURCE = textwrap.dedent(
    """
    from airflow.sdk import DAG as Dag, TaskGroup, dag, task
    from airflow.sdk import Variable
    from airflow.sdk.bases.hook import BaseHook

    from ml_platform.container import container_task

    DAG_ID = "by_constant"

    with Dag(dag_id=DAG_ID, schedule=None, catchup=False) as first:
        with TaskGroup("prep"):
            validate = container_task("validate", image="trainer")

        @task
        def report(threshold=Variable.get("defaults_run_at_import")):
            return Variable.get("fine_inside_a_task")

        report()
        report()


    @dag
    def bare():
        pass


    conn = BaseHook.get_connection("storage")
    """
)
TREE = ast.parse(SOURCE)


def _line(text: str) -> int:
    return next(n for n, line in enumerate(SOURCE.splitlines(), 1) if text in line)


def test_dag_constructors_by_alias_and_decorator() -> None:
    calls = dag_calls(TREE)
    assert [(c.dag_id, c.is_decorator) for c in calls] == [("by_constant", False), ("bare", True)]
    assert dag_line(TREE, "by_constant") == _line("with Dag(")
    assert dag_line(TREE, "bare") == _line("@dag")


def test_tasks_by_factory_argument_group_prefix_and_taskflow_reuse() -> None:
    assert task_line(TREE, "prep.validate", 0) == _line('container_task("validate"')
    assert task_line(TREE, "report", 0) == _line("def report(")
    assert task_line(TREE, "report__1", 0) == _line("def report(")
    assert task_line(TREE, "unknown", 7) == 7


def test_source_rules_see_what_runs_at_import_only() -> None:
    findings = source_findings("f.py", TREE)
    assert {(f.line, f.code) for f in findings} == {
        (_line("@dag"), "MLP104"),
        (_line("@dag"), "MLP105"),
        (_line("defaults_run_at_import"), "MLP106"),
        (_line("BaseHook.get_connection"), "MLP106"),
    }
    reads = sorted(f.message for f in findings if f.code == "MLP106")
    assert reads == [
        "BaseHook.get_connection runs at module top level, on every parse of the file",
        "Variable.get runs at module top level, on every parse of the file",
    ]
