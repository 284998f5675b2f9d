"""Identities per team and per purpose, as the program declares them (under the mocks).

No Secret holding the MLflow admin or a key beyond a team's own data reaches the training or
serving namespace; each storage identity reaches only its grants on every cloud (AWS's roles:
test_infra_storage_roles.py, GCP's Workload Identity: test_infra_workload_identity.py); every
team gets a service account, an MLflow login and a storage identity, every model of the
repository's specs a serving login of its own (test_infra_model_identities.py), and the users
Job creates the logins.
"""

from __future__ import annotations

import json

import pytest
from pulumi_harness import (
    MODELS,
    STACKS,
    declared,
    declared_secrets,
    stack_config,
    stack_values,
    unwrap,
)

from ml_infra.storage_gcp import account_id
from ml_infra.storage_kind import S3_CONFIG_SECRET
from ml_infra.team_identities import StorageGrant, storage_grants, team_identities
from tests.pod_security_profile import restricted_violations

TEAMS = ("ml-platform", "examples")
# Stacks whose storage identities hold keys (SeaweedFS); on AWS they assume roles
# (test_infra_storage_roles.py), on GCP act as GCP service accounts
# (test_infra_workload_identity.py).
KEYED_STACKS = ("kind",)
# Stacks with storage Secrets (kind's keys, AWS's region); GCP has none.
STORAGE_SECRET_STACKS = ("kind", "prod")


@pytest.mark.parametrize("stack", STACKS)
def test_training_and_serving_hold_only_team_credentials(stack: str):
    values = stack_values(stack)
    namespaces = values["ml-platform:namespaces"]
    secrets = declared_secrets(stack)
    training = {name for ns, name in secrets if ns == namespaces["training"]}
    serving = {name for ns, name in secrets if ns == namespaces["serving"]}
    kinds = ("mlflow", "storage") if stack in STORAGE_SECRET_STACKS else ("mlflow",)
    assert training == {f"team-{t}-{kind}" for t in TEAMS for kind in kinds}
    assert serving == {f"serve-{model}-mlflow" for model in MODELS}
    admin = values["ml-platform:mlflow"]["admin_user"]
    for (ns, name), data in secrets.items():
        if ns in (namespaces["training"], namespaces["serving"]) and name.endswith("-mlflow"):
            # team-<team>-mlflow holds login team-<team>, serve-<model>-mlflow serve-<model>.
            assert data["MLFLOW_TRACKING_USERNAME"] == name.removesuffix("-mlflow") != admin
    # The admin login and the artifact store's key stay in the mlflow namespace.
    assert (namespaces["mlflow"], values["ml-platform:mlflow"]["credentials_secret"]) in secrets
    if stack in STORAGE_SECRET_STACKS:
        storage_secret = values["ml-platform:storage"]["credentials_secret"]
        assert (namespaces["mlflow"], storage_secret) in secrets
    assert not any(
        ns == namespaces["airflow"] and "AWS_ACCESS_KEY_ID" in d for (ns, _), d in secrets.items()
    )


@pytest.mark.parametrize("stack", KEYED_STACKS)
def test_each_team_gets_its_own_storage_key(stack: str):
    namespaces = stack_values(stack)["ml-platform:namespaces"]
    secrets = declared_secrets(stack)
    keys = {
        name: data["AWS_ACCESS_KEY_ID"]
        for (ns, name), data in secrets.items()
        if "AWS_ACCESS_KEY_ID" in data
    }
    assert len(set(keys.values())) == len(keys), keys  # no two identities share a key
    assert set(keys) >= {f"team-{t}-storage" for t in TEAMS}
    assert all(ns != namespaces["serving"] for ns, name in secrets if name in keys)


def test_grants_reach_only_each_identitys_data():
    config = stack_config("kind")
    buckets = config.storage.buckets
    grants = storage_grants(config)
    assert grants["mlflow"] == [StorageGrant(buckets.artifacts, "", write=True)]
    assert grants["airflow"] == [
        StorageGrant(buckets.logs, "", write=True),
        StorageGrant(buckets.datasets, "", write=False),
    ]
    assert grants["team-examples"] == [StorageGrant(buckets.datasets, "teams/examples/", True)]
    assert grants["team-ml-platform"] == [
        StorageGrant(buckets.datasets, "daily/", True),
        StorageGrant(buckets.datasets, "prepared/", True),
    ]
    # No team reaches the artifacts (MLflow's proxy does) or the logs.
    for identity in team_identities(config):
        assert {g.bucket for g in grants[identity.storage_identity]} == {buckets.datasets}


def _seaweedfs_identities() -> dict[str, list[str]]:
    secret = declared("kind").named(S3_CONFIG_SECRET, ":Secret")
    document = json.loads(unwrap(secret.inputs["stringData"])["seaweedfs_s3_config"])
    return {identity["name"]: identity["actions"] for identity in document["identities"]}


def test_seaweedfs_has_no_admin_and_scopes_each_identity():
    identities = _seaweedfs_identities()
    assert set(identities) == {"mlflow", "airflow", "team-ml-platform", "team-examples"}
    assert not any("Admin" in action for actions in identities.values() for action in actions)
    assert identities["team-examples"] == [
        "List:ml-datasets",
        "Read:ml-datasets/teams/examples/*",
        "Write:ml-datasets/teams/examples/*",
        "Tagging:ml-datasets/teams/examples/*",
    ]
    assert identities["airflow"] == [
        "List:airflow-logs",
        "Read:airflow-logs",
        "Write:airflow-logs",
        "Tagging:airflow-logs",
        "List:ml-datasets",
        "Read:ml-datasets",
    ]
    assert identities["mlflow"] == [
        "List:ml-artifacts",
        "Read:ml-artifacts",
        "Write:ml-artifacts",
        "Tagging:ml-artifacts",
    ]


def test_gcs_object_roles_are_bounded_to_the_grants_prefix():
    bindings = declared("dev").of_type("storage/bucketIAMMember:BucketIAMMember")
    team = [b.inputs for b in bindings if b.name.startswith("storage-team-examples-")]
    object_roles = [b for b in team if b["role"] != "roles/storage.legacyBucketReader"]
    assert [b["role"] for b in object_roles] == ["roles/storage.objectUser"]
    datasets = stack_values("dev")["ml-platform:storage"]["buckets"]["datasets"]
    assert object_roles[0]["condition"]["expression"] == (
        f'resource.name.startsWith("projects/_/buckets/{datasets}/objects/teams/examples/")'
    )
    assert len(account_id("dev", "team-" + "x" * 40)) == 30


@pytest.mark.parametrize("stack", STACKS)
def test_every_team_runs_as_its_own_account(stack: str):
    training = stack_values(stack)["ml-platform:namespaces"]["training"]
    accounts = {
        a.inputs["metadata"]["name"]: a.inputs
        for a in declared(stack).of_type(":ServiceAccount")
        if a.inputs["metadata"]["name"].startswith("team-")
    }
    assert set(accounts) == {f"team-{t}" for t in TEAMS}
    for account in accounts.values():
        assert account["metadata"]["namespace"] == training
        assert account["automountServiceAccountToken"] is False


@pytest.mark.parametrize("stack", STACKS)
def test_the_users_job_creates_every_login_as_a_restricted_pod(stack: str):
    resources = declared(stack)
    users = json.loads(
        unwrap(resources.named("mlflow-users", ":Secret").inputs["stringData"])["users.json"]
    )
    assert set(users["users"]) == {f"team-{t}" for t in TEAMS} | {f"serve-{m}" for m in MODELS}
    job = unwrap(resources.named("mlflow-users", ":Job").inputs)
    pod = job["spec"]["template"]
    assert restricted_violations(pod["spec"]) == []
    container = pod["spec"]["containers"][0]
    assert all("password" not in json.dumps(arg).lower() for arg in container["command"])
    script = resources.named("mlflow-users-script", ":ConfigMap").inputs["data"]["mlflow_users.py"]
    assert "def ensure_user" in script
    assert pod["metadata"]["annotations"]["ml-platform/users-checksum"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_platform_document_names_every_teams_identities(stack: str):
    teams = declared(stack).outputs["platform_config"]["teams"]
    assert set(teams) == set(TEAMS)
    storage = {"storage_secret": "team-examples-storage"} if stack in STORAGE_SECRET_STACKS else {}
    assert teams["examples"] == {
        "service_account": "team-examples",
        "mlflow_secret": "team-examples-mlflow",
        **storage,
    }
