"""Offline pods of mapped tasks: literal lists give their first item, arguments a stand-in."""

from __future__ import annotations

import pytest
from airflow.sdk import DAG, task

from ml_platform import inspection
from ml_platform.container import (
    PlatformPodOperator,
    container_task_kwargs,
    mapped_container_task,
)


def _dag_with(expand: dict) -> DAG:
    with DAG("inspection_sample", schedule=None) as dag:

        @task
        def produce() -> list[list[str]]:
            return [["validate"]]

        values = {k: (produce() if v == "xcom" else v) for k, v in expand.items()}
        mapped_container_task("mapped", image="trainer", arguments=values["arguments"])
    return dag


def test_arguments_from_xcom_get_the_runtime_stand_in() -> None:
    dag = _dag_with({"arguments": "xcom"})
    pod = inspection.build_pod(inspection.concrete_operator(dag, "mapped"))
    base = pod.spec.containers[0]
    assert base.args == [inspection.RUNTIME_VALUE]


def test_literal_lists_give_map_index_zero() -> None:
    dag = _dag_with({"arguments": [["validate", "--input-uri", "s3://b/k"], ["other"]]})
    pod = inspection.build_pod(inspection.concrete_operator(dag, "mapped"))
    assert pod.spec.containers[0].args == ["validate", "--input-uri", "s3://b/k"]


def test_samples_override_the_stand_in() -> None:
    dag = _dag_with({"arguments": "xcom"})
    samples = {("inspection_sample", "mapped"): lambda d: {"arguments": ["train", "--x"]}}
    pod = inspection.build_pod(inspection.concrete_operator(dag, "mapped", samples))
    assert pod.spec.containers[0].args == ["train", "--x"]


def test_a_runtime_value_that_shapes_the_pod_is_refused() -> None:
    with DAG("inspection_resources", schedule=None) as dag:

        @task
        def sizes() -> list[dict]:
            return [{"limits": {"cpu": "1"}}]

        kwargs = container_task_kwargs(image="trainer", arguments=["validate"])
        kwargs.pop("container_resources")
        PlatformPodOperator.partial(task_id="sized", **kwargs).expand(container_resources=sizes())
    with pytest.raises(
        ValueError, match="inspection_resources.sized expands 'container_resources'"
    ):
        inspection.concrete_operator(dag, "sized")
