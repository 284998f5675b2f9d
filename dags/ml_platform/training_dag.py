"""The platform's training pipeline for one model spec: `training_dag(spec, ...)` builds the DAG.

    wait_for_data >> data_preparation (validate >> preprocess) >> train (one pod per sweep
    combination) >> select_best >> evaluate (vs the @champion) >> deploy_or_skip
    >> deploy | skip_deploy >> notify

Every run reports its end on the stack's channels (notify's summary, or the task that failed
and why), every task its own final failure, and a run not done `deadline` after it was queued
is reported by an Airflow deadline alert (ml_platform.notifications).

deploy_or_skip follows evaluate's verdict; on a day that drifted from the champion's
training data it first waits for a person to approve (ml_platform.approval).

The spec (ml_contract, `<model>.model.yaml` beside the DAG file) decides the data contract,
the metric and its direction, the promotion bar and the trainer: the platform's `trainer`
image with its MLP sweep, or a team image (images/<name>/ beside the spec) swept over the
hyperparameters the DAG gives. Every container task gets the spec as JSON in ML_MODEL_SPEC.
The owning team (the spec's folder) decides the owner and where the data lives.

A DAG file assigns the result at top level, `dag: DAG = training_dag(...)`, importing DAG
from airflow.sdk: the DAG processor only parses files that mention both "airflow" and "dag".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, TaskGroup, task

from ml_contract import PLATFORM_TRAINER, SPEC_ENV, Metric, ModelSpec, metrics_for
from ml_platform.approval import APPROVAL_KEY, DeployGate
from ml_platform.capacity import parallel_pods
from ml_platform.container import container_task, mapped_container_task
from ml_platform.dag_defaults import platform_default_args
from ml_platform.deployer_rules import deployer_env
from ml_platform.local.partitions import register_demo_source
from ml_platform.model_specs import (
    DAGS_FOLDER,
    model_dataset_prefix,
    spec_models,
    team_image,
    team_of,
)
from ml_platform.notifications import run_callbacks, run_deadline
from ml_platform.sensors import wait_for_partition
from ml_platform.settings import PlatformConfig, platform_config
from ml_platform.sweep import (
    SweepParamError,
    build_combinations,
    build_team_combinations,
    platform_sweep_params,
    team_sweep_params,
    team_trainer_arguments,
    trainer_arguments,
)

# Long enough for a day's data arriving late (wait_for_data gives it 6 hours) and a sweep.
DEFAULT_DEADLINE = timedelta(hours=8)
# The factory's `deadline` when the caller gives none: the spec's deadline_hours, else the
# default (a sentinel, since None means "no deadline alert").
SPEC_DEADLINE = timedelta(0)


@dataclass(frozen=True)
class TrainResources:
    """What one training pod asks for; gpus=0 keeps a team's CPU model off the GPU pools."""

    gpus: int = 1
    gpu_type: str | None = None
    # Under half of a kind GPU node (4 CPU, 8Gi) with the XCom sidecar, so two trials share
    # its two emulated GPUs instead of the second waiting Pending for CPU.
    cpu: str = "1500m"
    memory: str = "3Gi"


@dataclass(frozen=True)
class DataLocation:
    """Where a model's daily partitions land and where preprocess writes its splits."""

    root: str  # <datasets>, or <datasets>/teams/<team>/<model>

    @property
    def partition_uri(self) -> str:
        return self.root + "/daily/{{ ds }}"

    def prepared_uri(self, ds: str) -> str:
        return f"{self.root}/prepared/{ds}"


def data_location(spec: ModelSpec, config: PlatformConfig) -> DataLocation:
    prefix = model_dataset_prefix(team_of(spec.source), spec.model)
    return DataLocation(config.datasets_uri + (f"/{prefix}" if prefix else ""))


def best_result(results: Sequence[Mapping[str, Any]], metric: Metric) -> Mapping[str, Any]:
    """The training with the best validation score, in the metric's direction."""
    key = "val_" + metric.name
    missing = [r.get("run_id") for r in results if key not in r["metrics"]]
    if missing:
        raise ValueError(f"train results without {key}: runs {missing}")
    return sorted(results, key=lambda r: r["metrics"][key], reverse=metric.higher_is_better)[0]


def training_dag(
    spec: ModelSpec,
    *,
    dag_id: str,
    schedule: str | None,
    catchup: bool,
    start_date: datetime,
    tags: Sequence[str],
    doc_md: str | None = None,
    owner: str | None = None,
    sweep: Mapping[str, Any] | None = None,
    max_parallel: int | None = None,
    train_resources: TrainResources = TrainResources(),
    threshold_param: str = "threshold",
    execution_timeout: timedelta = timedelta(hours=2),
    retries: int = 2,
    local_source: str | None = None,
    deadline: timedelta | None = SPEC_DEADLINE,
    config: PlatformConfig | None = None,
) -> DAG:
    """The training pipeline of `spec` (see the module doc), one run per schedule interval.

    schedule and catchup are spelled out by every caller, as for any DAG (MLP104/MLP105).
    `owner` defaults to the team owning the spec's folder. `sweep` gives the defaults of the
    sweep params: for the platform trainer some of learning_rates, batch_sizes, hidden_sizes,
    optimizers, dropouts (lists) and epochs; for a team image one list per hyperparameter,
    passed as `--<name> <value>` (max_depth -> --max-depth). `threshold_param` names the DAG
    param holding the promotion bar. `local_source` is the `trainer generate --source` whose
    data stands in for this model's partitions in the local runtime (`make run-dag`).
    `max_parallel` (trials at once) defaults to what the stack runs side by side: the GPU
    pool's nodes and the training GPU quota (ml_platform.capacity), so a sweep queues in
    Airflow instead of in Pending or quota-refused pods. `deadline`: a run not done that long
    after it was queued notifies the stack's channels (None: no deadline alert; unset: the
    spec's `deadline_hours`, else DEFAULT_DEADLINE).
    """
    config = config or platform_config()
    if deadline == SPEC_DEADLINE:
        hours = spec.deadline_hours
        deadline = timedelta(hours=hours) if hours is not None else DEFAULT_DEADLINE
    team = team_of(spec.source)
    data = data_location(spec, config)
    metric_names = list(metrics_for(spec.task))
    is_platform = spec.trainer.is_platform
    if is_platform:
        sweep_params = platform_sweep_params(sweep, config.max_sweep_combinations)
        image, image_team = PLATFORM_TRAINER, None
    else:
        sweep_params = team_sweep_params(sweep, config.max_sweep_combinations)
        image, image_team = _team_image_of(spec, config)
    hyperparameter_names = list(sweep_params)  # a team image's: one list param each
    max_sweep = config.max_sweep_combinations  # the platform's limit: no run param raises it
    if max_parallel is None:
        max_parallel = parallel_pods(
            config,
            gpus=train_resources.gpus,
            gpu_type=train_resources.gpu_type,
            cpu=train_resources.cpu,
            memory=train_resources.memory,
            cap=max_sweep,
        )
    if local_source:
        register_demo_source(model_dataset_prefix(team, spec.model), local_source)
    spec_env = {SPEC_ENV: spec.to_json()}

    with DAG(
        dag_id=dag_id,
        schedule=schedule,
        start_date=start_date,
        catchup=catchup,
        max_active_runs=1,
        default_args=platform_default_args(
            owner=owner or team, execution_timeout=execution_timeout, retries=retries
        ),
        tags=list(tags),
        doc_md=doc_md,
        # The end of every run, success or failure: notify's summary, or what failed and why.
        **run_callbacks(summary_task="notify"),
        deadline=run_deadline(deadline, config) if deadline else None,
        params={
            "model_name": Param(spec.model, type="string", minLength=1),
            **sweep_params,
            "metric": Param(spec.metric, enum=metric_names),
            threshold_param: Param(spec.promotion.threshold, type="number"),
            "min_improvement": Param(spec.promotion.min_improvement, type="number"),
        },
    ) as dag:

        @task
        def hyperparameters(**context: Any) -> list[list[str]]:
            """Validate the sweep params and turn every combination into train arguments.

            A bad param stays bad on a retry: AirflowFailException fails the run at once.
            """
            from airflow.sdk.exceptions import AirflowFailException

            params = context["params"]
            # Another spec's model name would put this run's models under that model's
            # name, served with this model's identity: a run renames its model only to a
            # name no spec uses. Looked up here, not at parse time: reading every spec
            # would cost every parse of every DAG file, for a param only a run has.
            taken = spec_models().get(params["model_name"])
            if taken and params["model_name"] != spec.model:
                raise AirflowFailException(
                    f"param model_name: {params['model_name']!r} is the model of "
                    f"{_shown(taken)}; a run of {spec.model!r} may rename its model only to "
                    "a name no spec uses"
                )
            data_uri = data.prepared_uri(context["ds"])  # XCom values are not templated
            try:
                if is_platform:
                    combos = build_combinations(params, max_sweep)
                    return [trainer_arguments(c, data_uri, params["model_name"]) for c in combos]
                combos = build_team_combinations(params, hyperparameter_names, max_sweep)
            except SweepParamError as error:
                raise AirflowFailException(str(error)) from error
            return [team_trainer_arguments(c, data_uri, params["model_name"]) for c in combos]

        combinations = hyperparameters()

        wait_for_data = wait_for_partition(
            "wait_for_data",
            data.partition_uri,
            poke_interval=timedelta(minutes=5),
            timeout=timedelta(hours=6),
            config=config,
        )

        prepared = data.prepared_uri("{{ ds }}")  # rendered by Airflow in container arguments
        with TaskGroup("data_preparation") as data_preparation:
            validate = container_task(
                "validate",
                image=PLATFORM_TRAINER,
                # --model-name: check the day against the champion's reference profile too.
                arguments=["validate", "--input-uri", data.partition_uri]
                + ["--model-name", "{{ params.model_name }}"],
                env=spec_env,
                retries=0,  # bad data stays bad: fail at once, with the validator's message
                config=config,
            )
            preprocess = container_task(
                "preprocess",
                image=PLATFORM_TRAINER,
                arguments=["preprocess", "--input-uri", data.partition_uri]
                + ["--model-name", "{{ params.model_name }}", "--output-uri", prepared],
                memory="2Gi",
                env=spec_env,
                retries=0,  # the trainer exits 1 on bad data or spec: a retry fails the same way
                config=config,
            )
            validate >> preprocess

        train = mapped_container_task(
            "train",
            image=image,
            team=image_team,
            arguments=combinations,
            gpus=train_resources.gpus,
            gpu_type=train_resources.gpu_type,
            cpu=train_resources.cpu,
            memory=train_resources.memory,
            max_parallel=max_parallel,
            env=spec_env,
            config=config,
        )

        @task(multiple_outputs=True)
        def select_best(results: list[dict[str, Any]], **context: Any) -> dict[str, Any]:
            """The candidate with the best validation score (the test split is for evaluate)."""
            metric = metrics_for(spec.task)[context["params"]["metric"]]
            best = dict(best_result(results, metric))
            where = f"best of {len(results)} runs by val_{metric.name}"
            print(f"{where}: {best['run_id']} {best['params']}")
            return best

        best = select_best(train.output)

        evaluate = container_task(
            "evaluate",
            image=PLATFORM_TRAINER,
            arguments=[
                "evaluate",
                "--model-uri",
                best["model_uri"],
                "--run-id",
                best["run_id"],
                "--data-uri",
                prepared,
                "--model-name",
                "{{ params.model_name }}",
                "--metric",
                "{{ params.metric }}",
                "--threshold",
                "{{ params." + threshold_param + " }}",
                "--min-improvement",
                "{{ params.min_improvement }}",
            ],
            env=spec_env,
            config=config,
        )

        branch = DeployGate(
            task_id="deploy_or_skip",
            evaluate_task_id="evaluate",
            deploy_task_id="deploy",
            skip_task_id="skip_deploy",
            response_timeout=timedelta(hours=spec.promotion.approval_timeout_hours),
            retries=0,  # a second ask would lose the first answer
        )

        deploy = container_task(
            "deploy",
            image="deployer",
            service_account="deployer",
            arguments=[
                "deploy",
                "--run-id",
                best["run_id"],
                "--model-name",
                "{{ params.model_name }}",
            ],
            env={**spec_env, **deployer_env(config, team, spec.model)},
            retries=0,  # a failed rollout has already rolled itself back
            config=config,
        )

        @task
        def skip_deploy(**context: Any) -> str:
            approval = context["ti"].xcom_pull(task_ids="deploy_or_skip", key=APPROVAL_KEY)
            if approval and approval.get("required"):
                return "deploying on a drifted day was not approved: nothing deployed"
            return "the candidate did not pass evaluate's gates: nothing deployed"

        @task(trigger_rule="none_failed_min_one_success")
        def notify(**context: Any) -> dict[str, Any]:
            """The run's summary: best params and metrics, the decision, what serves now.

            The DAG's success callback sends it on the stack's channels (run_callbacks).
            """
            ti = context["ti"]
            best_run = ti.xcom_pull(task_ids="select_best")
            evaluation = ti.xcom_pull(task_ids="evaluate")
            deployed = ti.xcom_pull(task_ids="deploy")
            approval = ti.xcom_pull(task_ids="deploy_or_skip", key=APPROVAL_KEY)
            summary = {
                "model_name": context["params"]["model_name"],
                "best_run_id": best_run["run_id"],
                "best_params": best_run["params"],
                "best_metrics": best_run["metrics"],
                "should_deploy": evaluation["should_deploy"],
                "reason": evaluation["reason"],
                "gates": {
                    "golden": evaluation.get("golden"),
                    "suspect_data": evaluation.get("suspect_data"),
                    "signature": evaluation.get("signature"),
                    "drift": _drift_summary(evaluation.get("drift")),
                    "importance_top": (evaluation.get("importance") or {}).get("top"),
                },
                "approval": approval,
                "champion_before": evaluation["champion"],
                "deployed": deployed,
            }
            print("pipeline summary:", summary)
            return summary

        combinations >> wait_for_data >> data_preparation >> train
        evaluate >> branch >> [deploy, skip_deploy()] >> notify()
    return dag


def _shown(path: Path) -> str:
    """A spec file as its DAGs-folder path (dags/...), wherever the folder is."""
    try:
        return f"dags/{path.relative_to(DAGS_FOLDER)}"
    except ValueError:
        return str(path)


def _drift_summary(drift: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Drift without the per-feature table: what a summary line needs."""
    if not drift:
        return None
    return {k: drift[k] for k in ("reference", "threshold", "max_psi", "drifted")}


def _team_image_of(spec: ModelSpec, config: PlatformConfig) -> tuple[str, str]:
    """(image, team) of the spec's own trainer image; its folder must hold a Dockerfile."""
    image = team_image(spec.source, spec.trainer.image)
    if image.name in config.images.names:
        raise ValueError(
            f"{spec.source}: trainer.image {image.name!r} is a platform image's name: "
            "name the team's image otherwise"
        )
    if not image.dockerfile.is_file():
        raise ValueError(
            f"{spec.source}: trainer.image {image.name!r} has no images/{image.name}/Dockerfile "
            "beside the spec (make new-dag TRAINER=1 scaffolds one)"
        )
    return image.name, image.team
