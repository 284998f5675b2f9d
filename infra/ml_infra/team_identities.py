"""Who may touch what: one identity per team, one per platform component, and what each may
reach in storage.

A team's DAGs (dags/teams/<team>/, the platform's own at the top of dags/) run their pods
under the team's Kubernetes service account with the team's MLflow login and the team's
storage key, which reaches only the team's folder of the datasets bucket. Artifacts go
through MLflow's proxy, so no team holds a key to the artifacts bucket. A model server gets
a read-only login of its own model, not of its team (ml_infra.model_identities). The names
are made here once and reach the DAG library in the platform document.
"""

from __future__ import annotations

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
    def storage_secret(self) -> str:  # in the training namespace
        return f"team-{self.team}-storage"

    @property
    def storage_identity(self) -> str:
        return f"team-{self.team}"

    @property
    def dataset_prefixes(self) -> tuple[str, ...]:
        if self.team == PLATFORM_TEAM:
            return PLATFORM_DATASET_PREFIXES
        return (f"{TEAMS_PREFIX}/{self.team}/",)

    def document(self) -> dict[str, str]:
        """What the DAG library needs to give a team's pods their identity."""
        return {
            "service_account": self.service_account,
            "mlflow_secret": self.mlflow_secret,
            "storage_secret": self.storage_secret,
        }


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

    Listing is granted on the bucket as a whole (S3 lists by bucket; a prefix condition on
    ListBucket is honoured by S3 but not by every S3-compatible store), reads and writes only
    under the prefixes."""
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


def storage_service_accounts(config: StackConfig) -> dict[str, list[tuple[str, str]]]:
    """Each storage identity's users as (namespace, service account): on AWS exactly these
    may assume the identity's IAM role."""
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
