"""DAG-level settings of ml_training_pipeline: one run at a time, retries, a bounded sweep."""

from __future__ import annotations

from datetime import timedelta

import pytest
from airflow.sdk import DAG
from airflow.sdk.definitions.mappedoperator import MappedOperator
from airflow.serialization.serialized_objects import DagSerialization

from ml_platform.pools import check_schedulable, pods_per_node
from tests.dags.conftest import build_pod


def test_one_run_at_a_time_without_backfill(pipeline_dag: DAG):
    assert pipeline_dag.max_active_runs == 1
    assert pipeline_dag.catchup is False


def test_tags_and_docs(pipeline_dag: DAG):
    assert {"ml", "training", "gpu"} <= set(pipeline_dag.tags)
    assert pipeline_dag.doc_md and pipeline_dag.doc_md.strip()


def test_default_args(pipeline_dag: DAG):
    args = pipeline_dag.default_args
    assert args["owner"] == "ml-platform"
    assert args["retries"] >= 1
    assert args["retry_exponential_backoff"]
    assert isinstance(args["execution_timeout"], timedelta)
    assert args["execution_timeout"] > timedelta(0)


def test_tasks_inherit_the_default_args(pipeline_dag: DAG):
    args = pipeline_dag.default_args
    for task_id in ("hyperparameters", "train", "evaluate", "notify"):
        task = pipeline_dag.get_task(task_id)
        assert task.owner == args["owner"], task_id
        assert task.retries == args["retries"], task_id
        assert task.execution_timeout == args["execution_timeout"], task_id
        # Airflow 3.3 stores the backoff as a multiplier: True becomes 2.0.
        assert task.retry_exponential_backoff, task_id


@pytest.mark.parametrize(
    "task_id",
    [
        "data_preparation.validate",  # bad data stays bad: fail at once with the message
        "data_preparation.preprocess",  # the trainer exits 1 on a bad day or spec: same again
        "deploy",  # a failed rollout has rolled itself back; a retry would deploy twice
    ],
)
def test_no_retries_where_a_retry_cannot_help(pipeline_dag: DAG, task_id: str):
    assert pipeline_dag.get_task(task_id).retries == 0


def test_notify_runs_whichever_branch_ran(pipeline_dag: DAG):
    notify = pipeline_dag.get_task("notify")
    assert notify.trigger_rule == "none_failed_min_one_success"
    assert {"deploy", "skip_deploy"} <= notify.upstream_task_ids


def test_train_is_mapped_over_the_sweep(pipeline_dag: DAG):
    train = pipeline_dag.get_task("train")
    assert isinstance(train, MappedOperator)
    assert set(train.expand_input.value) == {"arguments"}
    assert "hyperparameters" in train.upstream_task_ids


def test_train_parallelism_is_what_the_stack_runs_side_by_side(pipeline_dag: DAG):
    """kind: one GPU node of 2 GPUs and a training GPU quota of 2."""
    cap = pipeline_dag.get_task("train").max_active_tis_per_dagrun
    assert cap == 2
    # The scheduler enforces the cap from the serialized DAG: it must survive serialization.
    restored = DagSerialization.from_dict(DagSerialization.to_dict(pipeline_dag))
    assert restored.get_task("train").max_active_tis_per_dagrun == cap


def test_evaluate_and_deploy_wait_for_select_best(pipeline_dag: DAG):
    """The XComArgs inside their `arguments` make select_best an upstream of both."""
    assert "select_best" in pipeline_dag.get_task("evaluate").upstream_task_ids
    assert "select_best" in pipeline_dag.get_task("deploy").upstream_task_ids


def test_the_default_sweep_runs_its_trials_side_by_side(pipeline_dag: DAG, platform):
    """Each of the train pods one run has at once, as the cluster gets them (sidecar and hook
    included), finds its GPU on the pool's nodes: none waits Pending for CPU or memory."""
    cap = pipeline_dag.get_task("train").max_active_tis_per_dagrun
    pod = build_pod(pipeline_dag.dag_id, "train")
    pool = check_schedulable(pod, platform)
    assert pods_per_node(pod, pool) >= min(cap, pool.gpus_per_node), (pool, pod.spec.containers)
