"""Every file under dags/ parses into DAGs that the DAG processor accepts."""

from __future__ import annotations

from pathlib import PurePath

from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization


def test_no_import_errors(dagbag: DagBag):
    assert dagbag.import_errors == {}, "\n\n".join(
        f"{path}:\n{error}" for path, error in dagbag.import_errors.items()
    )


def test_pipeline_dag_is_found(dagbag: DagBag):
    assert "ml_training_pipeline" in dagbag.dag_ids


def test_platform_library_is_not_parsed(dagbag: DagBag):
    """dags/.airflowignore keeps the DAG processor out of ml_platform/: it holds no DAGs."""
    parsed = [stat.file for stat in dagbag.dagbag_stats]
    assert parsed, "the DagBag parsed no file at all"
    assert [f for f in parsed if "ml_platform" in PurePath(f).parts] == []


def test_every_dag_survives_serialization(dagbag: DagBag):
    """The scheduler only sees the serialized DAG; a DAG that cannot round-trip never runs."""
    for dag_id, dag in dagbag.dags.items():
        restored = DagSerialization.from_dict(DagSerialization.to_dict(dag))
        assert restored.dag_id == dag_id
        assert set(restored.task_ids) == set(dag.task_ids)
