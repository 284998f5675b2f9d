"""AWS storage identities are IAM roles assumed through IRSA, not IAM users with keys.

Under the mocks every resource's `arn` is `arn:mock:<resource name>`, so a role ARN seen in an
annotation names the role it points at. The expected service accounts are written out here
from the prod stack's names (namespaces, release and chart naming), not computed by infra/.
"""

from __future__ import annotations

import json

import pytest
from pulumi_harness import (
    declared,
    declared_secrets,
    release_values,
    stack_config,
    stack_values,
    unwrap,
)

from ml_infra.storage_aws import ROLE_NAME_MAX, identity_policy, role_name
from ml_infra.team_identities import storage_grants, storage_service_accounts

OIDC_HOST = "oidc.eks.mock/id/MOCK"  # the mock cluster's issuer, less https://
ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
# STS is reached at its regional name only (the VPC's interface endpoint).
REGIONAL_STS = {"eks.amazonaws.com/sts-regional-endpoints": "true"}
# prod: CeleryExecutor, namespaces airflow / mlflow / ml-training, teams ml-platform + examples.
PROD_SUBJECTS = {
    "storage-mlflow": {"system:serviceaccount:mlflow:mlflow"},
    "storage-airflow": {
        "system:serviceaccount:airflow:airflow-worker",
        "system:serviceaccount:airflow:airflow-triggerer",
        "system:serviceaccount:airflow:airflow-api-server",
    },
    "storage-team-ml-platform": {"system:serviceaccount:ml-training:team-ml-platform"},
    "storage-team-examples": {"system:serviceaccount:ml-training:team-examples"},
}
KEY_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def _storage_roles() -> dict[str, dict]:
    return {
        role.name: role.inputs
        for role in declared("prod").of_type("iam/role:Role")
        if role.name.startswith("storage-")
    }


def test_aws_has_no_iam_user_or_access_key():
    resources = declared("prod")
    for kind in ("iam/user:User", "iam/accessKey:AccessKey", "iam/userPolicy:UserPolicy"):
        assert resources.of_type(kind) == [], kind


def test_each_storage_role_trusts_exactly_its_service_accounts():
    roles = _storage_roles()
    assert set(roles) == set(PROD_SUBJECTS)
    for name, inputs in roles.items():
        trust = json.loads(unwrap(inputs["assumeRolePolicy"]))
        (statement,) = trust["Statement"]
        assert statement["Effect"] == "Allow"
        assert statement["Principal"] == {"Federated": "arn:mock:eks-oidc"}
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        (operator,) = statement["Condition"]
        condition = statement["Condition"][operator]
        assert operator == "StringEquals", name  # no wildcard match
        assert set(condition) == {f"{OIDC_HOST}:sub", f"{OIDC_HOST}:aud"}
        assert condition[f"{OIDC_HOST}:aud"] == "sts.amazonaws.com"
        subjects = condition[f"{OIDC_HOST}:sub"]
        subjects = {subjects} if isinstance(subjects, str) else set(subjects)
        assert subjects == PROD_SUBJECTS[name], name
        assert inputs["name"] == f"ml-platform-prod-{name.removeprefix('storage-')}"


def test_each_storage_role_has_only_its_grants():
    config = stack_config("prod")
    grants = storage_grants(config)
    policies = {
        p.name: (p.inputs["role"], json.loads(unwrap(p.inputs["policy"])))
        for p in declared("prod").of_type("iam/rolePolicy:RolePolicy")
        if p.name.startswith("storage-")
    }
    assert set(policies) == set(PROD_SUBJECTS)
    for name, (role, policy) in policies.items():
        assert role == f"{name}-id"  # attached to the role of the same name
        assert policy == json.loads(identity_policy(grants[name.removeprefix("storage-")]))
    datasets = config.storage.buckets.datasets
    team = policies["storage-team-examples"][1]["Statement"]
    assert team[0]["Resource"] == [f"arn:aws:s3:::{datasets}"]
    assert team[1]["Resource"] == [f"arn:aws:s3:::{datasets}/teams/examples/*"]
    assert "s3:PutObject" in team[1]["Action"]
    airflow = policies["storage-airflow"][1]["Statement"]
    read_only = [s for s in airflow if s["Resource"] == [f"arn:aws:s3:::{datasets}/*"]]
    assert read_only and read_only[0]["Action"] == ["s3:GetObject"]


def test_team_service_accounts_carry_their_own_role():
    for stack in ("prod", "kind", "dev"):
        accounts = {
            a.inputs["metadata"]["name"]: a.inputs["metadata"]
            for a in declared(stack).of_type(":ServiceAccount")
            if a.inputs["metadata"]["name"].startswith("team-")
        }
        assert set(accounts) == {"team-ml-platform", "team-examples"}
        for name, meta in accounts.items():
            if stack == "prod":
                assert unwrap(meta["annotations"]) == {
                    ROLE_ANNOTATION: f"arn:mock:storage-{name}",
                    **REGIONAL_STS,
                }
            else:
                assert ROLE_ANNOTATION not in (meta.get("annotations") or {})


def test_chart_service_accounts_carry_the_component_roles():
    airflow = release_values("prod", "airflow")
    for component, account in (
        ("workers", "airflow-worker"),
        ("triggerer", "airflow-triggerer"),
        ("apiServer", "airflow-api-server"),
    ):
        assert airflow[component]["serviceAccount"] == {
            "name": account,
            "annotations": {ROLE_ANNOTATION: "arn:mock:storage-airflow", **REGIONAL_STS},
        }, component
    # Celery: the scheduler runs no task and the DAG processor reads no storage.
    for component in ("scheduler", "dagProcessor"):
        assert "annotations" not in airflow.get(component, {}).get("serviceAccount", {})
    mlflow = release_values("prod", "mlflow")
    assert mlflow["serviceAccount"]["name"] == "mlflow"
    assert mlflow["serviceAccount"]["annotations"] == {
        ROLE_ANNOTATION: "arn:mock:storage-mlflow",
        **REGIONAL_STS,
    }
    assert "existingSecret" not in mlflow["artifactRoot"]["s3"]


@pytest.mark.parametrize("stack", ("kind",))  # GCP's: test_infra_workload_identity.py
def test_keyed_stacks_annotate_no_chart_account(stack: str):
    airflow = release_values(stack, "airflow")
    for component in ("scheduler", "workers", "triggerer", "apiServer"):
        assert "annotations" not in airflow.get(component, {}).get("serviceAccount", {})
    assert release_values(stack, "mlflow")["serviceAccount"]["annotations"] == {}


def test_no_secret_holds_a_key_on_aws():
    secrets = declared_secrets("prod")
    assert secrets
    for (namespace, name), data in secrets.items():
        assert not set(KEY_NAMES) & set(data), (namespace, name)
        assert "mock-secret-access-key" not in json.dumps(data), (namespace, name)
    values = stack_values("prod")
    training = values["ml-platform:namespaces"]["training"]
    region = {"AWS_DEFAULT_REGION": "eu-west-1"}
    for team in ("ml-platform", "examples"):
        assert secrets[(training, f"team-{team}-storage")] == region
    storage_secret = values["ml-platform:storage"]["credentials_secret"]
    assert secrets[("mlflow", storage_secret)] == region


@pytest.mark.parametrize("stack", ("kind",))
def test_keyed_stacks_still_hand_out_keys(stack: str):
    training = stack_values(stack)["ml-platform:namespaces"]["training"]
    team = declared_secrets(stack)[(training, "team-examples-storage")]
    assert team["AWS_ACCESS_KEY_ID"] and team["AWS_SECRET_ACCESS_KEY"]


def _airflow_connection(stack: str) -> dict:
    secret = declared(stack).named("airflow-storage-connection", ":Secret")
    return json.loads(unwrap(secret.inputs["stringData"])["AIRFLOW_CONN_ML_STORAGE"])


def test_airflow_connection_has_no_key_on_aws():
    connection = _airflow_connection("prod")
    assert connection == {"conn_type": "aws", "extra": {"region_name": "eu-west-1"}}


@pytest.mark.parametrize("stack", ("kind",))
def test_airflow_connection_has_the_key_on_kind(stack: str):
    connection = _airflow_connection(stack)
    assert connection["login"] and connection["password"]


def test_airflow_storage_accounts_follow_the_executor():
    """LocalExecutor runs tasks in the scheduler: then the scheduler, not a worker, may
    assume the role (dev has LocalExecutor; the trust is the same function on any cloud)."""
    accounts = storage_service_accounts(stack_config("dev"))
    assert set(accounts["airflow"]) == {
        ("airflow", "airflow-scheduler"),
        ("airflow", "airflow-triggerer"),
        ("airflow", "airflow-api-server"),
    }


def test_role_names_fit_iam():
    long = "team-" + "x" * 50
    assert len(role_name("prod", long)) == ROLE_NAME_MAX
    assert role_name("prod", long) != role_name("prod", long[:-1])
    assert role_name("prod", "mlflow") == "ml-platform-prod-mlflow"
