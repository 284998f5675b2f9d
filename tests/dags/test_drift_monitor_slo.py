"""The drift monitor with an SLO in the spec: the gate, the rollback as the team's own deploy
step, and a breach that fails the run saying so. The real DAG file, beside a churn spec with
an `slo` section, parsed as the DAG processor does and checked as `make check-dags` does."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

from ml_platform.deployer_rules import TEAM_ENV
from ml_platform.model_specs import PLATFORM_TEAM
from ml_platform.policies import task_policy
from ml_platform.testing import build_task_pod, dag_findings, load_dag
from tests.dags.conftest import DAGS_FOLDER

SLO_TASKS = {"slo_gate", "rollback", "slo_breached"}


def _monitor_with(tmp_path: Path, slo: str | None) -> tuple[Path, DAG]:
    folder = tmp_path / "dags"
    folder.mkdir(parents=True)
    dag_file = folder / "ml_drift_monitor.py"
    shutil.copy(DAGS_FOLDER / "ml_drift_monitor.py", dag_file)
    spec = (DAGS_FOLDER / "churn_classifier.model.yaml").read_text()
    (folder / "churn_classifier.model.yaml").write_text(spec + (slo or ""))
    dag = load_dag(dag_file, "ml_drift_monitor")
    return dag_file, dag


def test_without_an_slo_the_monitor_has_no_slo_tasks(tmp_path: Path) -> None:
    _, dag = _monitor_with(tmp_path, None)
    assert not SLO_TASKS & set(dag.task_ids)


def test_an_alerting_slo_gates_a_task_that_fails_on_a_breach(tmp_path: Path) -> None:
    dag_file, dag = _monitor_with(tmp_path, "slo:\n  p99_latency_ms: 50\n")
    assert SLO_TASKS & set(dag.task_ids) == {"slo_gate", "slo_breached"}
    assert dag.get_task("slo_gate").upstream_task_ids == {"check_drift"}
    assert dag.get_task("slo_breached").upstream_task_ids == {"slo_gate"}
    assert dag_findings(dag_file) == []


def test_a_rolling_back_slo_runs_the_deployer_as_the_teams_deploy_step(tmp_path: Path) -> None:
    dag_file, dag = _monitor_with(
        tmp_path, "slo:\n  p99_latency_ms: 50\n  max_error_rate: 0.01\n  on_breach: rollback\n"
    )
    assert dag.get_task("rollback").upstream_task_ids == {"slo_gate"}
    breached = dag.get_task("slo_breached")
    assert breached.upstream_task_ids == {"slo_gate", "rollback"}
    assert breached.trigger_rule == "all_done"  # the breach is told even if rollback failed
    for task in dag.tasks:
        task_policy(task)  # as the cluster's DAG processor does
    pod = build_task_pod(dag, "rollback")
    container = pod.spec.containers[0]
    assert container.args == ["rollback", "--model-name", "{{ params.model_name }}"]
    assert not container.command  # the deployer's own entrypoint
    assert {e.name: e.value for e in container.env}[TEAM_ENV] == PLATFORM_TEAM
    # MLP206 and every other check of `make check-dags` accept it.
    assert dag_findings(dag_file) == []


def _run_gate_and_breach(dag: DAG, report: dict[str, Any], rolled: Any) -> tuple[Any, str]:
    """slo_gate's choice for `report`, and the reason slo_breached fails with."""
    gate = dag.get_task("slo_gate").python_callable(report)

    class TI:
        def xcom_pull(self, task_ids: str) -> Any:
            return {"check_drift": report, "rollback": rolled}[task_ids]

    with pytest.raises(AirflowFailException) as caught:
        dag.get_task("slo_breached").python_callable(ti=TI())
    return gate, str(caught.value)


def test_a_breach_is_the_failure_reason_and_a_met_slo_skips(tmp_path: Path) -> None:
    _, alerting = _monitor_with(tmp_path / "a", "slo:\n  p99_latency_ms: 0.001\n")
    met = {"slo": {"checked": True, "breached": False, "breaches": []}}
    assert alerting.get_task("slo_gate").python_callable(met) == []
    assert alerting.get_task("slo_gate").python_callable({"slo": None}) == []
    report = {
        "slo": {
            "checked": True,
            "breached": True,
            "breaches": ["p99 latency 0.495 ms > 0.001 ms"],
            "endpoint": "http://model-churn:80",
        }
    }
    gate, reason = _run_gate_and_breach(alerting, report, None)
    assert gate == ["slo_breached"]
    assert reason == "SLO breached: p99 latency 0.495 ms > 0.001 ms at http://model-churn:80"

    _, rolling = _monitor_with(
        tmp_path / "r", "slo:\n  p99_latency_ms: 0.001\n  on_breach: rollback\n"
    )
    rolled = {"version": "1", "rolled_back_from": "2", "status": "rolled_back"}
    gate, reason = _run_gate_and_breach(rolling, report, rolled)
    assert gate == ["rollback", "slo_breached"]
    assert reason.endswith("at http://model-churn:80; rolled back to v1 (from v2)")
    _, reason = _run_gate_and_breach(rolling, report, None)
    assert reason.endswith("; the rollback failed (see task rollback)")
