"""Helm releases: pinned charts, values files that parse, and the values the program computes."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from pulumi_harness import STACKS, declared, release_values

from ml_infra import airflow_release, charts, mlflow_release
from ml_infra.helm_values import HELM_DIR, covered, leaf_paths, values_files
from ml_platform.settings import parse_config

EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


@pytest.mark.parametrize("chart", charts.ALL, ids=lambda c: c.name)
def test_chart_versions_are_exact(chart: charts.Chart):
    assert EXACT_VERSION.match(chart.version), f"{chart.name} {chart.version} is not pinned"


@pytest.mark.parametrize("stack", STACKS)
def test_every_release_uses_a_pinned_chart(stack: str):
    pinned = {c.name: c for c in charts.ALL}
    releases = declared(stack).of_type(":Release")
    assert releases
    for release in releases:
        name = release.inputs["chart"].rsplit("/", 1)[-1]
        assert release.inputs["version"] == pinned[name].version, release.name
        if not pinned[name].is_oci:
            assert release.inputs["repositoryOpts"]["repo"] == pinned[name].repo


@pytest.mark.parametrize("chart_dir", ["airflow", "mlflow"])
@pytest.mark.parametrize("stack", STACKS)
def test_values_files_parse_and_leave_computed_keys_alone(chart_dir: str, stack: str):
    computed = {"airflow": airflow_release, "mlflow": mlflow_release}[chart_dir].COMPUTED_KEYS
    for path in values_files(chart_dir, stack):
        values = yaml.safe_load(path.read_text())
        assert isinstance(values, dict), path
        assert not [leaf for leaf in leaf_paths(values) if covered(leaf, computed)], path


@pytest.mark.parametrize("stack", STACKS)
def test_computed_keys_list_everything_the_program_sets(stack: str):
    """COMPUTED_KEYS is what the values-file check relies on: it must not miss a key."""
    for release, module in (("airflow", airflow_release), ("mlflow", mlflow_release)):
        values = release_values(stack, release)
        from_files = set()
        for path in values_files(release, stack):
            from_files |= leaf_paths(yaml.safe_load(path.read_text()))
        computed = {leaf for leaf in leaf_paths(values) if leaf not in from_files}
        stray = [leaf for leaf in computed if not covered(leaf, module.COMPUTED_KEYS)]
        assert not stray, f"{release}: computed but not in COMPUTED_KEYS: {stray}"


def test_helm_dir_has_no_stray_environments():
    for chart_dir in ("airflow", "mlflow"):
        names = {p.name for p in (HELM_DIR / chart_dir).glob("values-*.yaml")}
        assert names == {"values-common.yaml", *(f"values-{s}.yaml" for s in STACKS)}


@pytest.mark.parametrize("stack", STACKS)
def test_airflowrelease_values(stack: str):
    values = release_values(stack, "airflow")
    assert values["createUserJob"]["useHelmHooks"] is False
    assert values["migrateDatabaseJob"]["useHelmHooks"] is False
    assert values["postgresql"]["enabled"] is False
    assert values["data"]["metadataSecretName"] == "airflow-metadata"
    assert values["images"]["airflow"] == {"repository": "apache/airflow", "tag": "3.3.2"}
    env = {item["name"]: item["value"] for item in values["env"]}
    document = json.loads(env["ML_PLATFORM_CONFIG"])
    assert parse_config(document).environment == stack
    assert declared(stack).outputs["platform_config"] == document
    assert values["secret"] == [
        {
            "envName": "AIRFLOW_CONN_ML_STORAGE",
            "secretName": "airflow-storage-connection",
            "secretKey": "AIRFLOW_CONN_ML_STORAGE",
        }
    ]
    logging = values["config"]["logging"]
    assert logging["remote_logging"] == "True"
    assert logging["remote_log_conn_id"] == "ml_storage"
    assert logging["remote_base_log_folder"].startswith(f"{document['storage']['logs_uri']}/")
    assert "from ml_platform.policies import pod_mutation_hook" in values["airflowLocalSettings"]


def test_airflow_dags_on_kind_come_from_the_mounted_checkout():
    values = release_values("kind", "airflow")
    bundle = values["dagProcessor"]["dagBundleConfigList"]
    assert bundle == [
        {
            "name": "ml-platform",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": "/opt/airflow/ml-platform/dags"},
        }
    ]
    assert values["volumes"][0]["hostPath"] == {"path": "/ml-platform", "type": "Directory"}
    assert values["volumeMounts"][0]["mountPath"] == "/opt/airflow/ml-platform"
    env = {item["name"]: item["value"] for item in values["env"]}
    assert env["PYTHONPATH"] == "/opt/airflow/ml-platform/dags"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_airflow_dags_in_the_cloud_come_from_git(stack: str):
    (bundle,) = release_values(stack, "airflow")["dagProcessor"]["dagBundleConfigList"]
    assert bundle["classpath"] == "airflow.providers.git.bundles.git.GitDagBundle"
    assert bundle["kwargs"] == {
        "repo_url": "https://git.example.test/ml-platform.git",
        "tracking_ref": "main",
        "subdir": "dags",
    }


def test_celery_gets_its_broker_and_redis_password_from_secrets():
    values = release_values("prod", "airflow")
    assert values["executor"] == "CeleryExecutor"
    assert values["redis"]["enabled"] is True
    assert values["redis"]["passwordSecretName"] == "airflow-redis-password"
    assert values["data"]["brokerUrlSecretName"] == "airflow-broker-url"
    kind_redis = release_values("kind", "airflow")["redis"]
    assert kind_redis["enabled"] is False
    assert "passwordSecretName" not in kind_redis


def test_airflow_local_settings_run_the_platform_hook(monkeypatch):
    """The rendered airflow_local_settings really mutates a GPU pod like ml_platform does."""
    from kubernetes.client import models as k8s

    from ml_platform.settings import CONFIG_ENV

    settings = {}
    exec(airflow_release.AIRFLOW_LOCAL_SETTINGS, settings)  # as Airflow imports the file
    assert {"dag_policy", "task_policy", "pod_mutation_hook"} <= set(settings)
    monkeypatch.setenv(CONFIG_ENV, json.dumps(declared("prod").outputs["platform_config"]))
    pod = k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="textbook"),
        spec=k8s.V1PodSpec(
            containers=[
                k8s.V1Container(
                    name="base",
                    image="trainer",
                    resources=k8s.V1ResourceRequirements(limits={"nvidia.com/gpu": "4"}),
                )
            ]
        ),
    )
    settings["pod_mutation_hook"](pod)
    assert [t.key for t in pod.spec.tolerations] == ["nvidia.com/gpu"]
    terms = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    pools = {
        e.values[0]
        for e in terms.node_selector_terms[0].match_expressions
        if e.key == "ml-platform/pool"
    }
    assert pools == {"gpu-l4-x4"}


@pytest.mark.parametrize("stack", STACKS)
def test_mlflowrelease_values(stack: str):
    values = release_values(stack, "mlflow")
    assert values["service"] == {"port": 5000, "containerPort": 5000}
    assert values["auth"]["enabled"] is True
    assert values["auth"]["existingAdminSecret"]["name"] == "mlflow-credentials"
    assert values["artifactRoot"]["proxiedArtifactStorage"] is True
    artifacts = declared(stack).outputs["buckets"]["artifacts"]
    if stack == "dev":  # GCS's own API, as the server's Workload Identity: no key, no region
        assert values["artifactRoot"] == {
            "proxiedArtifactStorage": True,
            "gcs": {"enabled": True, "bucket": artifacts},
        }
        assert values["extraEnvVars"] == {"PGSSLMODE": "require"}
    else:
        s3 = values["artifactRoot"]["s3"]
        assert s3["enabled"] is True
        assert s3["bucket"] == artifacts
        if stack == "prod":  # the server's service account assumes the MLflow role (IRSA)
            assert "existingSecret" not in s3
        else:
            assert s3["existingSecret"]["name"] == "ml-storage-credentials"
    assert values["backendStore"]["postgres"]["database"] == "mlflow"
    assert values["backendStore"]["existingDatabaseSecret"]["name"] == "mlflow-database"
    assert values["auth"]["postgres"]["database"] == "mlflow_auth"
    assert "mlflow.mlflow.svc.cluster.local:5000" in values["serverAllowedHosts"]
