"""Helpers for the tests of a team's DAG (scaffolded by `make new-dag`).

The caller's conftest points AIRFLOW_HOME at a throwaway folder before Airflow is imported
(tests/teams/conftest.py does).
"""

from __future__ import annotations

from pathlib import Path

from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import DAG
from kubernetes.client import models as k8s

from ml_platform import inspection
from ml_platform.checks.runner import check_files
from ml_platform.policies import pod_mutation_hook
from ml_platform.violations import Finding


def load_dag(path: Path, dag_id: str) -> DAG:
    """The DAG as Airflow's DAG processor parses it; fails with the file's traceback."""
    bag = DagBag(dag_folder=str(path), safe_mode=False)
    if bag.import_errors:
        raise AssertionError("\n".join(bag.import_errors.values()))
    if dag_id not in bag.dags:
        raise AssertionError(f"{path} defines no DAG {dag_id!r} (it has: {sorted(bag.dag_ids)})")
    return bag.dags[dag_id]


def build_task_pod(dag: DAG, task_id: str) -> k8s.V1Pod:
    """The pod a container task would submit (map index 0), after the platform's hook."""
    pod = inspection.build_pod(inspection.concrete_operator(dag, task_id))
    pod_mutation_hook(pod)
    return pod


def dag_findings(path: Path) -> list[Finding]:
    """What `make check-dags` finds in one DAG file, parse time aside (it has its own run)."""
    return check_files([str(path)], parse_budget_s=None)
