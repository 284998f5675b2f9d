"""training_dag: one spec in, the platform's whole pipeline out, for the platform and teams.

The DAGs built from the repository's specs (the churn pipeline and the examples team's two)
are checked as parsed by the DagBag; the factory's other paths with DAGs built here.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.providers.standard.operators.hitl import HITLBranchOperator
from airflow.sdk import DAG
from airflow.sdk.definitions.mappedoperator import MappedOperator
from airflow.sdk.exceptions import AirflowFailException
from kubernetes.client import models as k8s

from ml_contract import SPEC_ENV, load_spec, metrics_for
from ml_platform import inspection
from ml_platform.local.partitions import demo_source, waited_prefixes
from ml_platform.settings import DEFAULT_CONFIG_FILE, PlatformConfig, parse_config
from ml_platform.sweep import SweepParamError
from ml_platform.training_dag import TrainResources, best_result, training_dag

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
EXAMPLES = DAGS_FOLDER / "teams" / "examples"
# dag_id -> the spec it is built from.
FACTORY_DAGS = {
    "ml_training_pipeline": DAGS_FOLDER / "churn_classifier.model.yaml",
    "examples.diabetes_regression": EXAMPLES / "diabetes.model.yaml",
    "examples.wine_custom": EXAMPLES / "wine.model.yaml",
}
TASKS = {  # task -> its upstream tasks, the same for every model
    "hyperparameters": set(),
    "wait_for_data": {"hyperparameters"},
    "data_preparation.validate": {"wait_for_data"},
    "data_preparation.preprocess": {"data_preparation.validate"},
    "train": {"hyperparameters", "data_preparation.preprocess"},
    "select_best": {"train"},
    "evaluate": {"select_best"},
    "deploy_or_skip": {"evaluate"},
    "deploy": {"deploy_or_skip", "select_best"},
    "skip_deploy": {"deploy_or_skip"},
    "notify": {"deploy", "skip_deploy"},
}
CONTAINER_TASKS = ["data_preparation.validate", "data_preparation.preprocess", "train"]
CONTAINER_TASKS += ["evaluate", "deploy"]


def _dag(dagbag: DagBag, dag_id: str) -> DAG:
    assert dag_id in dagbag.dags, f"{dag_id}: {dagbag.import_errors}"
    return dagbag.dags[dag_id]


def _pod(dag: DAG, task_id: str) -> k8s.V1Pod:
    return inspection.build_pod(inspection.concrete_operator(dag, task_id))


def _env(pod: k8s.V1Pod) -> dict[str, str]:
    return {var.name: var.value for var in pod.spec.containers[0].env}


def _args(dag: DAG, task_id: str) -> list[str]:
    return _pod(dag, task_id).spec.containers[0].args


def _local_config(tmp_path: Path) -> PlatformConfig:
    doc = json.loads(DEFAULT_CONFIG_FILE.read_text())
    doc["storage"]["datasets_uri"] = f"file://{tmp_path / 'datasets'}"
    return parse_config(doc)


def _build(spec_path: Path, **kwargs: Any) -> DAG:
    arguments = {
        "dag_id": "t.built_here",
        "schedule": None,
        "catchup": False,
        "start_date": datetime(2026, 1, 1, tzinfo=UTC),
        "tags": ["test"],
        **kwargs,
    }
    return training_dag(load_spec(spec_path), **arguments)


@pytest.mark.parametrize("dag_id", FACTORY_DAGS)
def test_every_model_gets_the_same_pipeline(dagbag: DagBag, dag_id: str) -> None:
    dag = _dag(dagbag, dag_id)
    assert {t: dag.get_task(t).upstream_task_ids for t in dag.task_ids} == TASKS
    assert isinstance(dag.get_task("train"), MappedOperator)
    assert dag.get_task("notify").trigger_rule == "none_failed_min_one_success"
    assert sorted(t for _, t in inspection.container_tasks(dagbag) if _ == dag_id) == sorted(
        CONTAINER_TASKS
    )


@pytest.mark.parametrize("dag_id", FACTORY_DAGS)
def test_deploy_or_skip_asks_a_person_with_skip_as_the_default(dagbag: DagBag, dag_id: str) -> None:
    spec = load_spec(FACTORY_DAGS[dag_id])
    gate = _dag(dagbag, dag_id).get_task("deploy_or_skip")
    assert isinstance(gate, HITLBranchOperator)
    assert gate.options_mapping == {"Deploy": "deploy", "Skip": "skip_deploy"}
    assert gate.defaults == ["Skip"] and not gate.multiple
    assert gate.response_timeout == timedelta(hours=spec.promotion.approval_timeout_hours)
    assert gate.retries == 0


class _Evaluate:
    def __init__(self, evaluation: dict[str, Any]) -> None:
        self.evaluation = evaluation

    def xcom_pull(self, task_ids: str) -> dict[str, Any]:
        assert task_ids == "evaluate"
        return self.evaluation


def test_the_approval_request_shows_the_drift_and_renders_empty_otherwise(dagbag: DagBag) -> None:
    gate = _dag(dagbag, "ml_training_pipeline").get_task("deploy_or_skip")
    body = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(gate.body)
    drifted = {
        "needs_approval": True,
        "reason": "candidate roc_auc 0.8100 beats champion version 1 (0.7900) by +0.0200",
        "metric": "roc_auc",
        "candidate": {"score": 0.81, "run_id": "abc"},
        "champion": {"version": "1"},
        "drift": {
            "reference": "profile of champion version 1",
            "threshold": 0.25,
            "drifted": ["age"],
            "features": {"age": {"psi": 0.61, "ks": 0.3}, "tenure_months": {"psi": 0.02}},
        },
    }
    text = body.render(ti=_Evaluate(drifted), params={"model_name": "churn-classifier"})
    assert "**churn-classifier**: candidate roc_auc 0.8100 beats" in text
    assert "- `age`: PSI 0.610 (drifted)" in text
    assert "- `tenure_months`: PSI 0.020\n" in text
    assert "after 24 h" in text
    calm = {"needs_approval": False, "reason": "no drift", "drift": None}
    assert body.render(ti=_Evaluate(calm), params={"model_name": "m"}).strip() == ""


@pytest.mark.parametrize("dag_id", FACTORY_DAGS)
def test_every_container_task_gets_the_spec(dagbag: DagBag, dag_id: str) -> None:
    spec = load_spec(FACTORY_DAGS[dag_id])
    dag = _dag(dagbag, dag_id)
    for task_id in CONTAINER_TASKS:
        assert _env(_pod(dag, task_id))[SPEC_ENV] == spec.to_json(), task_id


@pytest.mark.parametrize("dag_id", FACTORY_DAGS)
def test_params_come_from_the_spec(dagbag: DagBag, dag_id: str) -> None:
    spec = load_spec(FACTORY_DAGS[dag_id])
    params = _dag(dagbag, dag_id).params
    assert params["model_name"] == spec.model
    assert params["metric"] == spec.metric
    assert params.get_param("metric").schema["enum"] == list(metrics_for(spec.task))
    assert params["min_improvement"] == spec.promotion.min_improvement
    bar = "min_metric" if dag_id == "ml_training_pipeline" else "threshold"
    assert params[bar] == spec.promotion.threshold
    arguments = _args(_dag(dagbag, dag_id), "evaluate")
    assert arguments[arguments.index("--threshold") + 1] == "{{ params." + bar + " }}"


def test_the_owner_is_the_team_of_the_spec_folder(dagbag: DagBag) -> None:
    assert _dag(dagbag, "ml_training_pipeline").default_args["owner"] == "ml-platform"
    for dag_id in ("examples.diabetes_regression", "examples.wine_custom"):
        dag = _dag(dagbag, dag_id)
        assert {task.owner for task in dag.tasks} == {"examples"}, dag_id


def test_a_teams_data_lives_under_its_own_prefix(dagbag: DagBag, platform: PlatformConfig):
    root = f"{platform.datasets_uri}/teams/examples/diabetes-progression"
    dag = _dag(dagbag, "examples.diabetes_regression")
    assert dag.get_task("wait_for_data").bucket_key == root + "/daily/{{ ds }}/*.parquet"
    validate = _args(dag, "data_preparation.validate")
    assert validate == [
        "validate",
        "--input-uri",
        root + "/daily/{{ ds }}",
        "--model-name",
        "{{ params.model_name }}",
    ]
    preprocess = _args(dag, "data_preparation.preprocess")
    assert preprocess[-4:] == [
        "--model-name",
        "{{ params.model_name }}",
        "--output-uri",
        root + "/prepared/{{ ds }}",
    ]
    evaluate = _args(dag, "evaluate")
    assert evaluate[evaluate.index("--data-uri") + 1] == root + "/prepared/{{ ds }}"


def test_the_platform_trainer_sweep_takes_the_dags_defaults(dagbag: DagBag) -> None:
    dag = _dag(dagbag, "examples.diabetes_regression")
    rendered = dag.get_task("hyperparameters").python_callable(
        params=dag.params.validate(), ds="2026-11-03"
    )
    assert len(rendered) == 2
    first = rendered[0]
    assert first[:5] == [
        "train",
        "--data-uri",
        dag.get_task("wait_for_data").bucket_key.split("/daily/")[0] + "/prepared/2026-11-03",
        "--experiment",
        "diabetes-progression",
    ]
    flags = dict(zip(first[5::2], first[6::2], strict=True))
    assert flags["--batch-size"] == "32"
    assert flags["--epochs"] == "30"
    assert sorted(r[r.index("--learning-rate") + 1] for r in rendered) == ["0.003", "0.01"]


def test_a_team_image_is_swept_over_the_dags_hyperparameters(dagbag: DagBag) -> None:
    dag = _dag(dagbag, "examples.wine_custom")
    params = dag.params.validate()
    assert params["max_depth"] == [3, 6]
    assert params["n_estimators"] == [100]
    assert "learning_rates" not in params  # the platform trainer's sweep is not this image's
    hyperparameters = dag.get_task("hyperparameters").python_callable
    rendered = hyperparameters(params=params, ds="2026-11-03")
    assert [r[5:] for r in rendered] == [
        ["--max-depth", "3", "--n-estimators", "100"],
        ["--max-depth", "6", "--n-estimators", "100"],
    ]
    assert rendered[0][:5] == ["train", "--data-uri", rendered[0][2], "--experiment"] + [
        "wine-cultivar"
    ]
    assert "max_combinations" not in params  # the platform's limit, not a run's
    # Over the platform's limit (16): the run fails at once, no retry (AirflowFailException).
    with pytest.raises(AirflowFailException, match="the grid has 18 combinations") as raised:
        hyperparameters(params={**params, "n_estimators": list(range(10, 100, 10))}, ds="x")
    assert isinstance(raised.value.__cause__, SweepParamError)


def test_a_bad_sweep_param_fails_the_run_without_retries(dagbag: DagBag) -> None:
    dag = _dag(dagbag, "ml_training_pipeline")
    task = dag.get_task("hyperparameters")
    assert task.retries == 2  # the platform default: a param error must not use them
    params = {**dag.params.validate(), "optimizers": ["rmsprop"]}
    with pytest.raises(AirflowFailException, match="^param optimizers: 'rmsprop' is not one of"):
        task.python_callable(params=params, ds="2026-11-03")


def test_the_team_image_runs_from_the_platform_registry(
    dagbag: DagBag, platform: PlatformConfig
) -> None:
    dag = _dag(dagbag, "examples.wine_custom")
    pod = _pod(dag, "train")
    base = pod.spec.containers[0]
    assert (
        base.image == f"{platform.images.registry}/team-examples-wine-trainer:{platform.images.tag}"
    )
    assert base.image == platform.images.team_ref("examples", "wine-trainer")
    assert pod.metadata.labels["ml-platform/image"] == "wine-trainer"
    assert pod.metadata.labels["ml-platform/team"] == "examples"
    assert "nvidia.com/gpu" not in (base.resources.limits or {})  # TrainResources(gpus=0)
    for task_id in ("data_preparation.validate", "evaluate"):  # the rest stays the platform's
        assert _pod(dag, task_id).spec.containers[0].image == (platform.images.ref("trainer"))


@pytest.mark.parametrize(("metric", "expected"), [("rmse", "low"), ("mae", "low"), ("r2", "high")])
def test_select_best_follows_the_metrics_direction(
    dagbag: DagBag, metric: str, expected: str
) -> None:
    results = [
        {"run_id": "high", "metrics": {"val_rmse": 60.0, "val_mae": 50.0, "val_r2": 0.5}},
        {"run_id": "low", "metrics": {"val_rmse": 50.0, "val_mae": 40.0, "val_r2": 0.4}},
    ]
    for result in results:
        result.update(model_uri=f"models:/{result['run_id']}", params={})
    select_best = _dag(dagbag, "examples.diabetes_regression").get_task("select_best")
    best = select_best.python_callable(results, params={"metric": metric})
    assert best["run_id"] == expected


def test_best_result_names_runs_without_the_metric() -> None:
    metric = metrics_for("binary")["roc_auc"]
    with pytest.raises(ValueError, match=r"without val_roc_auc: runs \['r2'\]"):
        best_result([{"run_id": "r2", "metrics": {"val_f1": 0.5}}], metric)


def test_the_local_runtime_knows_each_examples_demo_data(dagbag: DagBag) -> None:
    _dag(dagbag, "examples.wine_custom")  # parsing the DAGs records their demo sources
    assert demo_source("") == "churn-synthetic"
    assert demo_source("teams/examples/diabetes-progression") == "sklearn-diabetes"
    assert demo_source("teams/examples/wine-cultivar") == "sklearn-wine"


def test_the_local_runtime_finds_the_partition_a_team_dag_waits_for(tmp_path: Path) -> None:
    dag = _build(EXAMPLES / "wine.model.yaml", config=_local_config(tmp_path))
    assert waited_prefixes(dag, tmp_path) == ["teams/examples/wine-cultivar"]


def _team_copy(tmp_path: Path, dockerfile: bool) -> Path:
    team = tmp_path / "dags" / "teams" / "examples"
    team.mkdir(parents=True)
    shutil.copy(EXAMPLES / "wine.model.yaml", team)
    if dockerfile:
        (team / "images" / "wine-trainer").mkdir(parents=True)
        (team / "images" / "wine-trainer" / "Dockerfile").write_text("FROM x\n")
    return team / "wine.model.yaml"


def test_a_team_image_needs_its_dockerfile_beside_the_spec(tmp_path: Path) -> None:
    spec = _team_copy(tmp_path, dockerfile=False)
    with pytest.raises(ValueError, match="'wine-trainer' has no images/wine-trainer/Dockerfile"):
        _build(spec)
    assert _build(_team_copy(tmp_path / "ok", dockerfile=True)).default_args["owner"] == (
        "examples"
    )


@pytest.mark.parametrize(
    ("spec", "sweep", "message"),
    [
        ("diabetes", {"learning_rate": [0.1]}, "param learning_rate: not a sweep param"),
        ("diabetes", {"learning_rates": [2.0]}, r"param learning_rates: 2.0 is not in \(0, 1\]"),
        ("diabetes", {"learning_rates": [0.1] * 17}, "the grid has 17 combinations"),
        ("wine", {"metric": [1]}, "param metric: a hyperparameter is lowercase"),
        ("wine", {"Max-Depth": [1]}, "param Max-Depth: a hyperparameter is lowercase"),
        ("wine", {"max_depth": []}, "param max_depth: expected a non-empty list"),
        ("wine", {"max_depth": [3, "deep"]}, "param max_depth: mixes numbers and strings"),
        ("wine", {"max_depth": [True]}, "param max_depth: True is not a number or a string"),
    ],
)
def test_a_bad_sweep_default_fails_the_parse_naming_the_param(
    spec: str, sweep: dict[str, Any], message: str
) -> None:
    with pytest.raises(SweepParamError, match=message):
        _build(EXAMPLES / f"{spec}.model.yaml", sweep=sweep)


def test_train_resources_reach_the_train_pod(tmp_path: Path) -> None:
    dag = _build(
        EXAMPLES / "diabetes.model.yaml", train_resources=TrainResources(gpus=0, memory="3Gi")
    )
    train = _pod(dag, "train")
    limits = train.spec.containers[0].resources.limits
    assert limits["memory"] == "3Gi"
    assert "nvidia.com/gpu" not in limits


def test_the_drift_monitor_reads_the_churn_spec(dagbag: DagBag) -> None:
    spec = load_spec(FACTORY_DAGS["ml_training_pipeline"])
    monitor = _dag(dagbag, "ml_drift_monitor")
    assert _env(_pod(monitor, "check_drift"))[SPEC_ENV] == spec.to_json()


def test_a_run_may_not_take_another_specs_model_name(dagbag: DagBag) -> None:
    """Renaming the run's model to another spec's would deploy under that name with this
    model's serving identity: refused before anything runs. A name no spec uses is allowed."""
    dag = _dag(dagbag, "examples.wine_custom")
    task = dag.get_task("hyperparameters")
    params = dag.params.validate()
    other = load_spec(DAGS_FOLDER / "teams/examples/diabetes.model.yaml").model
    with pytest.raises(
        AirflowFailException,
        match=rf"^param model_name: '{other}' is the model of "
        r"dags/teams/examples/diabetes\.model\.yaml; a run of 'wine-cultivar' may rename",
    ):
        task.python_callable(params={**params, "model_name": other}, ds="2026-11-03")
    renamed = task.python_callable(params={**params, "model_name": "wine-trial"}, ds="2026-11-03")
    assert renamed[0][3:5] == ["--experiment", "wine-trial"]
