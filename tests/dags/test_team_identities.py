"""Each team's pods run as the team: task_policy gives them the team's account and Secrets,
and refuses (MLP207) a task that names another team's; pod_mutation_hook refuses a finished
pod that references another team's Secrets, however it was built. A deploy step carries its
own model's serving login alone, named from the model name."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.exceptions import AirflowClusterPolicyViolation
from kubernetes.client import models as k8s

from ml_contract import load_spec
from ml_platform.deployer_rules import dag_team, deployer_env
from ml_platform.model_specs import spec_files, team_of
from ml_platform.policies import pod_mutation_hook, task_policy
from ml_platform.serving_identity import looks_like_serving_name, serving_identity
from ml_platform.settings import PlatformConfig, parse_config, platform_config, read_config_document
from ml_platform.team_identities import pod_secret_names

IMAGE = "localhost/ml-platform/trainer:dev"


def _env(pod: k8s.V1Pod) -> dict[str, str]:
    return {e.name: e.value for e in pod.spec.containers[0].env or []}


def test_every_pod_runs_with_its_dags_team_identity(
    container_task: tuple[str, str], container_pod: k8s.V1Pod, platform: PlatformConfig
):
    from tests.dags.conftest import _dag

    team = dag_team(_dag(container_task[0]).fileloc)
    identity = platform.teams[team]
    secrets = pod_secret_names(container_pod)
    if container_pod.spec.service_account_name == platform.service_accounts["deployer"]:
        assert secrets == {identity.mlflow_secret}
        env = _env(container_pod)
        assert env["DEPLOYER_TEAM"] == team
        login, secret = serving_identity(env["DEPLOYER_MODEL"])
        assert (env["DEPLOYER_SERVING_USER"], env["DEPLOYER_ENV_SECRET"]) == (login, secret)
    else:
        assert container_pod.spec.service_account_name == identity.service_account
        assert secrets == set(identity.secrets)


def test_each_deploy_pod_carries_only_its_models_serving_login(
    dagbag: DagBag, platform: PlatformConfig
):
    from tests.dags.conftest import build_pod

    models = {load_spec(path).model: team_of(path) for path in spec_files()}
    deployed = {}
    for dag in dagbag.dags.values():
        for task_id in sorted({"deploy", "rollback"} & set(dag.task_ids)):
            pod = build_pod(dag.dag_id, task_id)
            if pod.spec.service_account_name != platform.service_accounts["deployer"]:
                continue
            model = _env(pod)["DEPLOYER_MODEL"]
            named = {
                value
                for c in pod.spec.containers
                for value in [*(e.value for e in c.env or []), *(c.args or [])]
                if isinstance(value, str) and looks_like_serving_name(value)
            }
            assert named == set(serving_identity(model)), f"{dag.dag_id}.{task_id}"
            deployed[dag.dag_id] = model
    # Every model of the repository's specs is deployed by some DAG, two teams' among them.
    assert set(deployed.values()) == set(models)
    assert len({models[m] for m in deployed.values()}) == 2


def test_the_examples_team_runs_as_itself(dagbag: DagBag, platform: PlatformConfig):
    from tests.dags.conftest import build_pod

    examples = [d for d in dagbag.dags.values() if dag_team(d.fileloc) == "examples"]
    assert examples
    pod = build_pod(examples[0].dag_id, "train")
    assert pod.spec.service_account_name == "team-examples"
    assert pod_secret_names(pod) == {"team-examples-mlflow", "team-examples-storage"}


def _team_dag(tmp_path: Path, team: str, body: str) -> tuple[DagBag, Path]:
    path = tmp_path / "dags" / "teams" / team / "steal.py"
    path.parent.mkdir(parents=True)
    path.write_text(
        textwrap.dedent(
            """\
            from datetime import datetime

            from airflow.sdk import DAG

            from ml_platform.container import container_task

            with DAG("steal", schedule=None, start_date=datetime(2026, 1, 1)):
            """
        )
        + textwrap.indent(textwrap.dedent(body), "    ")
    )
    bag = DagBag(dag_folder=str(path), safe_mode=False)
    assert not bag.import_errors, bag.import_errors
    return bag, path


def _refusal(task) -> str:
    with pytest.raises(AirflowClusterPolicyViolation) as raised:
        task_policy(task)
    return str(raised.value)


def test_another_teams_secret_is_refused_at_its_line(tmp_path: Path):
    bag, path = _team_dag(
        tmp_path,
        "examples",
        """\
        container_task("t", image="trainer", arguments=["x"], secrets=["team-ml-platform-storage"])
        """,
    )
    message = _refusal(bag.dags["steal"].get_task("t"))
    assert message.startswith(f"{path}:8: MLP207 task 't' references 'team-ml-platform-storage', ")
    assert "team 'ml-platform''s credentials" in message


def test_another_teams_account_is_refused(tmp_path: Path):
    bag, _ = _team_dag(
        tmp_path,
        "examples",
        """\
        account = "team-ml-platform"
        container_task("t", image="trainer", arguments=["x"], service_account_name=account)
        """,
    )
    message = _refusal(bag.dags["steal"].get_task("t"))
    assert "runs as service account 'team-ml-platform' (team 'ml-platform''s account)" in message


def test_a_team_without_identities_is_refused_on_a_cluster_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    bag, _ = _team_dag(
        tmp_path, "newteam", 'container_task("t", image="trainer", arguments=["x"])\n'
    )
    task = bag.dags["steal"].get_task("t")
    message = _refusal(task)
    assert "team 'newteam' has no identities on stack 'kind'" in message
    assert "adds 'newteam' to ml-platform:teams in infra/Pulumi.kind.yaml" in message
    monkeypatch.setenv("ML_PLATFORM_RUNTIME", "local")  # no identities are used there
    task_policy(task)


def test_the_team_identity_is_given_to_a_mapped_task(tmp_path: Path):
    bag, _ = _team_dag(
        tmp_path,
        "examples",
        """\
        from ml_platform.container import mapped_container_task
        mapped_container_task("m", image="trainer", arguments=[["a"], ["b"]])
        """,
    )
    task = bag.dags["steal"].get_task("m")
    task_policy(task)
    assert task.partial_kwargs["service_account_name"] == "team-examples"
    assert {s.secret for s in task.partial_kwargs["secrets"]} == {
        "team-examples-mlflow",
        "team-examples-storage",
    }


def _pod(account: str, secret: str, env: dict[str, str] | None = None) -> k8s.V1Pod:
    container = k8s.V1Container(
        name="base",
        image=IMAGE,
        env=[k8s.V1EnvVar(name=k, value=v) for k, v in (env or {}).items()] or None,
        env_from=[k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=secret))],
    )
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="p-1", namespace="ml-training"),
        spec=k8s.V1PodSpec(containers=[container], service_account_name=account),
    )


def test_the_hook_refuses_a_pod_with_another_teams_secret():
    with pytest.raises(AirflowClusterPolicyViolation) as raised:
        pod_mutation_hook(_pod("team-examples", "team-ml-platform-storage"))
    assert "MLP207 pod 'p-1' runs as 'team-examples' but references" in str(raised.value)
    pod_mutation_hook(_pod("team-examples", "team-examples-storage"))
    # A secret mounted as a volume counts too.
    pod = _pod("team-examples", "team-examples-mlflow")
    pod.spec.volumes = [
        k8s.V1Volume(
            name="s", secret=k8s.V1SecretVolumeSource(secret_name="team-ml-platform-mlflow")
        )
    ]
    with pytest.raises(AirflowClusterPolicyViolation):
        pod_mutation_hook(pod)


def test_the_deployer_pod_may_hold_only_its_teams_login():
    team = {"DEPLOYER_TEAM": "examples"}
    pod_mutation_hook(_pod("ml-deployer", "team-examples-mlflow", team))
    with pytest.raises(AirflowClusterPolicyViolation):
        pod_mutation_hook(_pod("ml-deployer", "team-ml-platform-mlflow", team))


def _deploy_dag(tmp_path: Path, model: str, extra_env: str = "") -> tuple[DagBag, Path]:
    return _team_dag(
        tmp_path,
        "examples",
        f"""\
        from ml_platform.settings import platform_config
        from ml_platform.deployer_rules import deployer_env

        env = deployer_env(platform_config(), "examples", {model!r}){extra_env}
        container_task(
            "t", image="deployer", service_account="deployer", arguments=["deploy"], env=env
        )
        """,
    )


def test_a_new_models_deploy_step_gets_the_login_named_from_its_model_on_a_cluster_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # No spec of the repository has this model, and the document names no models: the login
    # comes from the name, as `pulumi up` creates it from the team's new spec.
    bag, _ = _deploy_dag(tmp_path, "Fraud.Score_v2")
    task = bag.dags["steal"].get_task("t")
    task_policy(task)
    login, secret = serving_identity("Fraud.Score_v2")
    assert login.startswith("serve-fraud-score-v2-") and secret == f"{login}-mlflow"
    env = deployer_env(platform_config(), "examples", "Fraud.Score_v2")
    assert (env["DEPLOYER_SERVING_USER"], env["DEPLOYER_ENV_SECRET"]) == (login, secret)
    # A document without teams (no identities there) and the local runtime grant nothing.
    local = parse_config({**read_config_document(), "teams": {}})
    assert "DEPLOYER_SERVING_USER" not in deployer_env(local, "examples", "fraud-score")
    monkeypatch.setenv("ML_PLATFORM_RUNTIME", "local")  # MLflow has no auth there
    assert "DEPLOYER_ENV_SECRET" not in deployer_env(platform_config(), "examples", "fraud-score")


def test_a_deploy_step_may_not_name_another_models_serving_login(tmp_path: Path):
    bag, _ = _deploy_dag(
        tmp_path, "wine-cultivar", ' | {"DEPLOYER_ENV_SECRET": "serve-diabetes-progression-mlflow"}'
    )
    message = _refusal(bag.dags["steal"].get_task("t"))
    assert (
        "task 't' names 'serve-diabetes-progression-mlflow', another model's serving identity "
        "(model 'wine-cultivar''s are 'serve-wine-cultivar' and 'serve-wine-cultivar-mlflow')"
        in message
    )


def test_a_serving_name_of_a_model_without_a_spec_is_refused_too(tmp_path: Path):
    # Any name of a serving login's form that is not the step's own model's is another's.
    bag, _ = _deploy_dag(tmp_path, "wine-cultivar", ' | {"X": "serve-somebody"}')
    message = _refusal(bag.dags["steal"].get_task("t"))
    assert "task 't' names 'serve-somebody', another model's serving identity" in message


def test_a_model_whose_name_looks_like_a_serving_login_may_deploy_itself(tmp_path: Path):
    bag, _ = _deploy_dag(tmp_path, "serve-me", ' | {"NAME": "serve-me"}')
    task_policy(bag.dags["steal"].get_task("t"))


def test_another_teams_model_is_left_to_the_deployer_which_acts_for_the_dags_team(
    tmp_path: Path,
):
    # The deployer's authority step refuses a registered model DEPLOYER_TEAM does not own;
    # MLP206 keeps DEPLOYER_TEAM the DAG folder's team.
    env = deployer_env(platform_config(), "examples", "churn-classifier")
    assert env["DEPLOYER_TEAM"] == "examples"
    assert env["DEPLOYER_SERVING_USER"] == "serve-churn-classifier"
    bag, _ = _deploy_dag(tmp_path, "churn-classifier", ' | {"DEPLOYER_TEAM": "ml-platform"}')
    assert "MLP206" in _refusal(bag.dags["steal"].get_task("t"))
