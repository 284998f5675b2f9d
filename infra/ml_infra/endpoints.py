"""In-cluster names and URLs of what the program installs, derived from the stack config.

Helm release names are fixed so that the Services they create have predictable names.
"""

from __future__ import annotations

from ml_infra.config import StackConfig

AIRFLOW_RELEASE = "airflow"
MLFLOW_RELEASE = "mlflow"
SEAWEEDFS_RELEASE = "seaweedfs"
AIRFLOW_API_PORT = 8080
SEAWEEDFS_S3_PORT = 8333
POSTGRES_PORT = 5432
SERVING_PORT = 8080  # the model server's container port (services/deployer)
# The Airflow chart's service account of each component (values key -> account name, the
# chart's default `<release>-<component>`; airflow_release sets the names it relies on).
AIRFLOW_SERVICE_ACCOUNTS = {
    "scheduler": f"{AIRFLOW_RELEASE}-scheduler",
    "workers": f"{AIRFLOW_RELEASE}-worker",
    "triggerer": f"{AIRFLOW_RELEASE}-triggerer",
    "apiServer": f"{AIRFLOW_RELEASE}-api-server",
}
MLFLOW_SERVICE_ACCOUNT = MLFLOW_RELEASE  # set in the MLflow chart's values


def service_host(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc.cluster.local"


def mlflow_url(config: StackConfig) -> str:
    host = service_host(MLFLOW_RELEASE, config.namespaces["mlflow"])
    return f"http://{host}:{config.mlflow.port}"


def airflow_task_runner(config: StackConfig) -> str:
    """The Airflow component that runs tasks (chart values key): LocalExecutor runs them in
    the scheduler, CeleryExecutor in the workers."""
    return "scheduler" if config.airflow.executor == "LocalExecutor" else "workers"


def airflow_url(config: StackConfig) -> str:
    host = service_host(f"{AIRFLOW_RELEASE}-api-server", config.namespaces["airflow"])
    return f"http://{host}:{AIRFLOW_API_PORT}"


def storage_scheme(config: StackConfig) -> str:
    """How the stack's buckets are addressed: gs:// on GCP (GCS's own API, Workload Identity),
    s3:// elsewhere (S3 on AWS, SeaweedFS's S3 API on kind)."""
    return "gs" if config.cloud == "gcp" else "s3"


def storage_endpoint(config: StackConfig) -> str | None:
    """Where the S3 API is: SeaweedFS on kind; None on AWS, where clients find S3 by region,
    and on GCP, where clients speak GCS's own API."""
    if config.cloud == "kind":
        # The chart's all-in-one mode names its Service <release>-all-in-one.
        host = service_host(f"{SEAWEEDFS_RELEASE}-all-in-one", config.namespaces["storage"])
        return f"http://{host}:{SEAWEEDFS_S3_PORT}"
    return None


def storage_region(config: StackConfig) -> str:
    """The region S3 clients sign requests for (S3 stacks only)."""
    if config.cloud == "aws":
        return config.aws.region
    if config.cloud == "kind":
        return "us-east-1"  # SeaweedFS accepts any region
    raise ValueError(f"{config.cloud}: storage is not reached through the S3 API here")
