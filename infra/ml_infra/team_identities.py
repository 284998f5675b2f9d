"""Who may touch what: one identity per team, one per platform component, and what each may
reach in storage.

A team's DAGs (dags/teams/<team>/, the platform's own at the top of dags/) run their pods
under the team's Kubernetes service account with the team's MLflow login and the team's
storage identity, which reaches only the team's folder of the datasets bucket: a key in the
team's storage Secret on kind, the IAM role (AWS, IRSA) or GCP service account (GKE Workload
Identity) the team's service account is bound to in the cloud. Artifacts go through MLflow's
proxy, so no team reaches the artifacts bucket. A model server gets
a read-only login of its own model, not of its team (ml_infra.model_identities). The names
are made here once and reach the DAG library in the platform document.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ml_infra.config import PLATFORM_TEAM, StackConfig, team_service_account
from ml_infra.endpoints import (
    AIRFLOW_SERVICE_ACCOUNTS,
    MLFLOW_SERVICE_ACCOUNT,
    airflow_task_runner,
)

# Below the datasets bucket (ml_platform.model_specs.dataset_prefix): a team's data lives
# under teams/<team>/; the platform's own model keeps daily/ and prepared/ at the top.
TEAMS_PREFIX = "teams"
PLATFORM_DATASET_PREFIXES = ("daily/", "prepared/")
# Storage identities of the platform's components (the keys of storage_grants()).
MLFLOW_STORAGE = "mlflow"
AIRFLOW_STORAGE = "airflow"


@dataclass(frozen=True)
class TeamIdentity:
    team: str

    @property
    def service_account(self) -> str:
        return team_service_account(self.team)

    @property
    def mlflow_user(self) -> str:
        return f"team-{self.team}"

    @property
    def mlflow_secret(self) -> str:  # in the training namespace
        return f"team-{self.team}-mlflow"

    @property
    def storage_secret(self) -> str:  # in the training namespace, where it exists
        return f"team-{self.team}-storage"

    @property
    def storage_identity(self) -> str:
        return f"team-{self.team}"

    @property
    def dataset_prefixes(self) -> tuple[str, ...]:
        if self.team == PLATFORM_TEAM:
            return PLATFORM_DATASET_PREFIXES
        return (f"{TEAMS_PREFIX}/{self.team}/",)

    def document(self, storage_secret: bool) -> dict[str, str]:
        """What the DAG library needs to give a team's pods their identity; the storage
        Secret only where the stack has one (has_storage_secrets)."""
        names = {"service_account": self.service_account, "mlflow_secret": self.mlflow_secret}
        if storage_secret:
            names["storage_secret"] = self.storage_secret
        return names


def has_storage_secrets(config: StackConfig) -> bool:
    """Whether pods get their storage settings from a Secret: the identity's key on kind, the
    region S3 clients sign for on AWS. On GCP nothing is left to hand them: Workload Identity
    comes with the service account and gs:// needs no endpoint or region."""
    return config.cloud != "gcp"


def team_identities(config: StackConfig) -> list[TeamIdentity]:
    """The platform's own team first, then the stack's teams in config order."""
    return [TeamIdentity(PLATFORM_TEAM), *(TeamIdentity(team) for team in config.teams)]


@dataclass(frozen=True)
class StorageGrant:
    bucket: str
    prefix: str  # "" for the whole bucket, else ends with "/"
    write: bool  # read, list and write (put, delete); else read and list


def storage_grants(config: StackConfig) -> dict[str, list[StorageGrant]]:
    """Each storage identity and what it may reach, least first.

    Listing is granted on the bucket as a whole (S3 and GCS list by bucket; a prefix
    condition on listing is honoured by S3 but not by every S3-compatible store, and GCS IAM
    conditions on object names do not apply to it), reads and writes only under the
    prefixes."""
    buckets = config.storage.buckets
    grants = {
        MLFLOW_STORAGE: [StorageGrant(buckets.artifacts, "", write=True)],
        # Remote task logs, and the partition sensors' look at any team's landing data.
        AIRFLOW_STORAGE: [
            StorageGrant(buckets.logs, "", write=True),
            StorageGrant(buckets.datasets, "", write=False),
        ],
    }
    for identity in team_identities(config):
        grants[identity.storage_identity] = [
            StorageGrant(buckets.datasets, prefix, write=True)
            for prefix in identity.dataset_prefixes
        ]
    return grants


def airflow_storage_components(config: StackConfig) -> list[str]:
    """Airflow's components (chart values keys) that reach storage: the task runner writes
    task logs and pokes the partition sensors, the triggerer runs the deferred sensors and
    writes trigger logs, the API server reads the logs back."""
    return [airflow_task_runner(config), "triggerer", "apiServer"]


def cloud_identity_name(wanted: str, limit: int) -> str:
    """A storage identity's name in the cloud (IAM role, GCP service account): `wanted`, or
    where longer than the cloud's `limit` its head and a hash of the whole, so two long names
    stay distinct."""
    if len(wanted) <= limit:
        return wanted
    digest = hashlib.sha256(wanted.encode()).hexdigest()[:6]
    return f"{wanted[: limit - 7].rstrip('-')}-{digest}"


def storage_service_accounts(config: StackConfig) -> dict[str, list[tuple[str, str]]]:
    """Each storage identity's users as (namespace, service account): in the cloud exactly
    these may assume the identity's IAM role (AWS) or act as its GCP service account (GCP)."""
    ns = config.namespaces
    accounts = {
        MLFLOW_STORAGE: [(ns["mlflow"], MLFLOW_SERVICE_ACCOUNT)],
        AIRFLOW_STORAGE: [
            (ns["airflow"], AIRFLOW_SERVICE_ACCOUNTS[component])
            for component in airflow_storage_components(config)
        ],
    }
    for identity in team_identities(config):
        accounts[identity.storage_identity] = [(ns["training"], identity.service_account)]
    return accounts
