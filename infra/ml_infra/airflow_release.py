"""Airflow: the official chart, with the stack's executor, database, DAGs, logs and settings.

The chart's own Postgres and Helm hooks are off (Pulumi waits for the migration Job like
any other object); secrets come from Secrets the program created; DAGs come from this
repository (a GitDagBundle in the cloud, the kind nodes' mounted checkout locally); task
logs go to the logs bucket (s3://, or gs:// on GCP through the Google provider the image
has, with a keyless connection: Workload Identity); and every component gets
ML_PLATFORM_CONFIG, the platform's pool catalog and names, plus the pod_mutation_hook in
airflow_local_settings. On GCP the triggerer also gets the platform's GCS trigger
(ml_infra.triggerer_modules).
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ml_infra import charts
from ml_infra.config import StackConfig
from ml_infra.endpoints import AIRFLOW_RELEASE, AIRFLOW_SERVICE_ACCOUNTS
from ml_infra.generated_secrets import GeneratedSecrets
from ml_infra.helm_release import helm_release
from ml_infra.helm_values import merge
from ml_infra.notifications import chart_secret_env
from ml_infra.platform_document import platform_document
from ml_infra.platform_secrets import (
    AIRFLOW_ADMIN_SECRET,
    AIRFLOW_API_SECRET,
    AIRFLOW_BROKER_SECRET,
    AIRFLOW_FERNET_SECRET,
    AIRFLOW_JWT_SECRET,
    AIRFLOW_METADATA_SECRET,
    AIRFLOW_REDIS_SECRET,
    AIRFLOW_STORAGE_CONNECTION_SECRET,
    connection_env_name,
)
from ml_infra.resources import StorageAccess
from ml_infra.team_identities import AIRFLOW_STORAGE, airflow_storage_components
from ml_infra.triggerer_modules import triggerer_values

PLATFORM_CONFIG_ENV = "ML_PLATFORM_CONFIG"
DAG_BUNDLE = "ml-platform"
LOCAL_CHECKOUT = "/opt/airflow/ml-platform"  # where kind's mounted checkout appears in pods
LOCAL_DAG_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
GIT_DAG_BUNDLE = "airflow.providers.git.bundles.git.GitDagBundle"

# The platform's cluster policies (dags/ml_platform/policies.py) ship inside the DAG bundle,
# which Airflow puts on sys.path when it parses a DAG of the bundle (in the DAG processor and
# in the process that runs a task), not when a component starts: so each policy imports the
# platform's implementation when it is called.
AIRFLOW_LOCAL_SETTINGS = '''\
"""Cluster policies of the ML platform (rendered by infra/ml_infra/airflow_release.py)."""


def dag_policy(dag):
    from ml_platform.policies import dag_policy as platform_dag_policy

    platform_dag_policy(dag)


def task_policy(task):
    from ml_platform.policies import task_policy as platform_task_policy

    platform_task_policy(task)


def pod_mutation_hook(pod):
    from ml_platform.policies import pod_mutation_hook as platform_pod_mutation_hook

    platform_pod_mutation_hook(pod)
'''

# Every key the program sets; helm/airflow/*.yaml must leave them alone.
COMPUTED_KEYS = (
    "executor",
    "airflowVersion",
    "defaultAirflowTag",
    "images.airflow",
    "postgresql.enabled",
    "redis.enabled",
    "redis.passwordSecretName",
    "data",
    "fernetKeySecretName",
    "apiSecretKeySecretName",
    "jwtSecretName",
    "createUserJob.useHelmHooks",
    "createUserJob.defaultUser",
    "createUserJob.args",
    "createUserJob.env",
    "migrateDatabaseJob.useHelmHooks",
    "allowPodLaunching",
    "dagProcessor.dagBundleConfigList",
    "env",
    "secret",
    "volumes",
    "volumeMounts",
    "airflowLocalSettings",
    "config.logging.remote_logging",
    "config.logging.remote_base_log_folder",
    "config.logging.remote_log_conn_id",
    *(f"{component}.serviceAccount.name" for component in AIRFLOW_SERVICE_ACCOUNTS),
    *(f"{component}.serviceAccount.annotations" for component in AIRFLOW_SERVICE_ACCOUNTS),
    "triggerer.extraVolumes",
    "triggerer.extraVolumeMounts",
    "triggerer.env",
    "triggerer.podAnnotations",
)


ADMIN_PASSWORD_ENV = "AIRFLOW_ADMIN_PASSWORD"
# The chart's own user fields (templated by the chart), less the password.
_USER_FIELDS = (("-r", "role"), ("-u", "username"), ("-e", "email"))
_USER_FIELDS += (("-f", "firstName"), ("-l", "lastName"))


def create_user_args() -> list[str]:
    """`airflow users create` with the password on stdin, twice (it asks for a confirmation):
    without a terminal it reads stdin, and bash's builtin printf puts it in no process's argv.
    An existing user is left as it is."""
    script = (
        f'printf "%s\\n%s\\n" "${ADMIN_PASSWORD_ENV}" "${ADMIN_PASSWORD_ENV}" '
        '| airflow users create "$@"'
    )
    args = ["bash", "-c", script, "--"]
    for flag, field in _USER_FIELDS:
        args += [flag, "{{ .Values.createUserJob.defaultUser." + field + " }}"]
    return args


def dag_bundles(config: StackConfig) -> list[dict[str, Any]]:
    dags = config.airflow.dags
    if dags.source == "local":
        kwargs: dict[str, Any] = {"path": f"{LOCAL_CHECKOUT}/{dags.subdir}"}
        classpath = LOCAL_DAG_BUNDLE
    else:
        kwargs = {"repo_url": dags.repo_url, "tracking_ref": dags.ref, "subdir": dags.subdir}
        if dags.git_conn_id:
            kwargs["git_conn_id"] = dags.git_conn_id
        classpath = GIT_DAG_BUNDLE
    return [{"name": DAG_BUNDLE, "classpath": classpath, "kwargs": kwargs}]


def storage_account_values(config: StackConfig, storage: StorageAccess) -> dict[str, Any]:
    """The service accounts of the components that reach storage, named as the storage
    identity's trust names them and, in the cloud, annotated with that identity."""
    annotations = storage.identity_annotations(AIRFLOW_STORAGE)
    values: dict[str, Any] = {}
    for component in airflow_storage_components(config):
        account: dict[str, Any] = {"name": AIRFLOW_SERVICE_ACCOUNTS[component]}
        if annotations:
            account["annotations"] = annotations
        values[component] = {"serviceAccount": account}
    return values


def airflow_computed_values(
    config: StackConfig, generated: GeneratedSecrets, storage: StorageAccess
) -> dict[str, Any]:
    airflow = config.airflow
    celery = airflow.executor == "CeleryExecutor"
    connection = config.storage.airflow_connection
    document = platform_document(config)
    env = [
        {"name": PLATFORM_CONFIG_ENV, "value": json.dumps(document)},
    ]
    values: dict[str, Any] = {
        "executor": airflow.executor,
        "airflowVersion": airflow.image_tag,
        "defaultAirflowTag": airflow.image_tag,
        "images": {"airflow": {"repository": airflow.image_repository, "tag": airflow.image_tag}},
        "postgresql": {"enabled": False},
        "redis": {"enabled": celery},
        "data": {"metadataSecretName": AIRFLOW_METADATA_SECRET},
        "fernetKeySecretName": AIRFLOW_FERNET_SECRET,
        "apiSecretKeySecretName": AIRFLOW_API_SECRET,
        "jwtSecretName": AIRFLOW_JWT_SECRET,
        "createUserJob": {
            "useHelmHooks": False,
            # No password here: values live in the release's Secret and the chart's own
            # args pass it as `-p <password>`, visible in the Job spec and the process list.
            "defaultUser": {"enabled": True, "username": airflow.admin_user},
            "env": [
                {
                    "name": ADMIN_PASSWORD_ENV,
                    "valueFrom": {
                        "secretKeyRef": {"name": AIRFLOW_ADMIN_SECRET, "key": "password"}
                    },
                }
            ],
            "args": create_user_args(),
        },
        "migrateDatabaseJob": {"useHelmHooks": False},
        # Task pods run in the training namespace, where infra/ grants what they need.
        "allowPodLaunching": False,
        "dagProcessor": {"dagBundleConfigList": dag_bundles(config)},
        "env": env,
        "secret": [
            {
                "envName": connection_env_name(connection),
                "secretName": AIRFLOW_STORAGE_CONNECTION_SECRET,
                "secretKey": connection_env_name(connection),
            },
            # The notification channels' connections (ml_infra.notifications), if any.
            *chart_secret_env(config),
        ],
        "airflowLocalSettings": AIRFLOW_LOCAL_SETTINGS,
        "config": {
            "logging": {
                "remote_logging": "True",
                "remote_base_log_folder": f"{document['storage']['logs_uri']}/logs",
                "remote_log_conn_id": connection,
            }
        },
    }
    values.update(storage_account_values(config, storage))
    trigger_modules = triggerer_values(config)
    if trigger_modules:
        values["triggerer"].update(trigger_modules)
    if celery:
        values["redis"]["passwordSecretName"] = AIRFLOW_REDIS_SECRET
        values["data"]["brokerUrlSecretName"] = AIRFLOW_BROKER_SECRET
    if airflow.dags.source == "local":
        # Every component reads the checkout that kind mounts into its nodes; with the
        # DAG folder on PYTHONPATH, ml_platform is importable from the start.
        values["volumes"] = [
            {
                "name": "ml-platform-checkout",
                "hostPath": {"path": airflow.dags.node_path, "type": "Directory"},
            }
        ]
        values["volumeMounts"] = [
            {"name": "ml-platform-checkout", "mountPath": LOCAL_CHECKOUT, "readOnly": True}
        ]
        env.append({"name": "PYTHONPATH", "value": f"{LOCAL_CHECKOUT}/{airflow.dags.subdir}"})
    return values


def declare_airflow(
    config: StackConfig,
    provider: k8s.Provider,
    file_values: dict[str, Any],
    generated: GeneratedSecrets,
    storage: StorageAccess,
    depends_on: list[pulumi.Resource],
) -> k8s.helm.v3.Release:
    return helm_release(
        "airflow",
        charts.AIRFLOW,
        release_name=AIRFLOW_RELEASE,
        namespace=config.namespaces["airflow"],
        values=merge(file_values, airflow_computed_values(config, generated, storage)),
        provider=provider,
        depends_on=depends_on,
        timeout_s=1800,  # first install runs the database migrations
    )
