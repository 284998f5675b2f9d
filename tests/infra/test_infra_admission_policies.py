"""The admission policies each stack declares, evaluated against real pods with a real CEL
evaluator: every pod the DAGs launch on the stack is admitted (the training DAG's deploy and
train pods among them), and what Airflow's identity could send the API server directly
(another image, a command or another team's Secret under a platform account, the deployer's
label on another pod, an exec into a task's own container) is refused with its rule's code.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from admission_cel import all_refusals, exec_request, pod_request, refusals
from airflow.dag_processing.dagbag import DagBag
from airflow.providers.cncf.kubernetes.utils.xcom_sidecar import PodDefaults
from kubernetes.client import models as k8s
from pulumi_harness import STACKS, declared, unwrap
from test_infra_k8s_schema import KUBERNETES_VERSION, manifest

from ml_infra import admission_policies
from ml_infra.admission_policies import (
    DEPLOYER_POLICY,
    EXEC_POLICY,
    TEAM_SECRETS_POLICY,
    XCOM_SIDECAR,
)
from ml_platform import inspection, policies
from ml_platform.settings import CONFIG_ENV, IMAGE_LABEL, parse_config

POLICIES = (EXEC_POLICY, DEPLOYER_POLICY, TEAM_SECRETS_POLICY)
PIPELINE = "ml_training_pipeline"
DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"


@cache
def stack_pods(stack: str) -> list[tuple[str, str, k8s.V1Pod]]:
    """(dag_id, task_id, pod) of every container task, DAGs parsed with the stack's config
    under the platform's task_policy (which gives a task its team's account and Secrets) and
    each pod passed through pod_mutation_hook: what the stack's API server receives."""
    document = json.dumps(declared(stack).outputs["platform_config"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CONFIG_ENV, document)
        bag = DagBag(dag_folder=str(DAGS_FOLDER))
        assert not bag.import_errors, bag.import_errors
        for dag in bag.dags.values():
            for task in dag.tasks:
                policies.task_policy(task)
        pods = list(inspection.dag_pods(bag))
        for _, _, pod in pods:
            policies.pod_mutation_hook(pod)
    assert pods, "no container task found"
    return pods


def _policies(stack: str) -> dict[str, dict[str, Any]]:
    """Policy name -> spec, as declared for the stack."""
    return {
        d.inputs["metadata"]["name"]: unwrap(d.inputs["spec"])
        for d in declared(stack).of_type(":ValidatingAdmissionPolicy")
    }


def _bindings(stack: str) -> dict[str, dict[str, Any]]:
    return {
        d.inputs["metadata"]["name"]: unwrap(d.inputs["spec"])
        for d in declared(stack).of_type(":ValidatingAdmissionPolicyBinding")
    }


def _config(stack: str):
    return parse_config(declared(stack).outputs["platform_config"])


def _pod(stack: str, task_id: str) -> dict[str, Any]:
    """A fresh JSON copy of the pipeline's pod for `task_id`, as the cluster receives it."""
    (pod,) = [p for d, t, p in stack_pods(stack) if d == PIPELINE and t == task_id]
    return copy.deepcopy(pod_request(pod).object)


def _refused(stack: str, pod: dict[str, Any], operation: str = "CREATE") -> list[str]:
    return all_refusals(_policies(stack), pod_request(pod, operation))


def _codes(messages: list[str]) -> set[str]:
    return {m.split(":", 1)[0] for m in messages}


def _container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    (container,) = [c for c in pod["spec"]["containers"] if c["name"] == name]
    return container


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_binds_each_policy_to_deny(stack: str):
    policies, bindings = _policies(stack), _bindings(stack)
    assert set(policies) == set(bindings) == set(POLICIES)
    training = _config(stack).namespaces["training"]
    for name, spec in policies.items():
        assert bindings[name] == {"policyName": name, "validationActions": ["Deny"]}
        assert spec["failurePolicy"] == "Fail"
        selector = spec["matchConstraints"]["namespaceSelector"]
        assert selector == {"matchLabels": {"kubernetes.io/metadata.name": training}}
        assert all(v["message"] for v in spec["validations"])


@pytest.mark.parametrize("stack", STACKS)
def test_policies_and_bindings_validate_against_the_kubernetes_schema(stack: str):
    objects = [
        d
        for d in declared(stack).declared
        if d.type.endswith((":ValidatingAdmissionPolicy", ":ValidatingAdmissionPolicyBinding"))
    ]
    assert len(objects) == 2 * len(POLICIES)
    for resource in objects:
        document = manifest(resource)
        assert document["apiVersion"] == "admissionregistration.k8s.io/v1"
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_names_come_from_the_stack_and_the_provider():
    """The deployer image reference is the DAG library's, the sidecar the provider's."""
    sidecar = PodDefaults.SIDECAR_CONTAINER
    assert (sidecar.name, sidecar.image) == (XCOM_SIDECAR, admission_policies.XCOM_SIDECAR_IMAGE)
    assert admission_policies.DEPLOYER_LABEL_VALUE == "deployer"
    for stack in STACKS:
        config = _config(stack)
        deployer = config.images.ref("deployer")
        expression = _policies(stack)[DEPLOYER_POLICY]["validations"][0]["expression"]
        assert f'"{deployer}"' in expression
        accounts = _policies(stack)[TEAM_SECRETS_POLICY]["variables"][2]["expression"]
        for team in config.teams.values():
            assert f'"{team.service_account}"' in accounts


@pytest.mark.parametrize("stack", STACKS)
def test_every_pod_the_dags_launch_is_admitted(stack: str):
    pods = stack_pods(stack)
    tasks = {(d, t) for d, t, _ in pods}
    assert {(PIPELINE, "deploy"), (PIPELINE, "train")} <= tasks
    # Team pods are among them, with their team's Secrets: MLP207 has something to pass.
    train = _pod(stack, "train")
    assert train["spec"]["serviceAccountName"].startswith("team-")
    assert _container(train, "base")["envFrom"]
    for dag_id, task_id, pod in pods:
        for operation in ("CREATE", "UPDATE"):
            refused = all_refusals(_policies(stack), pod_request(pod, operation))
            assert refused == [], f"{dag_id}.{task_id} ({operation}): {refused}"


@pytest.mark.parametrize("stack", STACKS)
def test_the_deploy_pod_is_checked_by_the_deployer_rules(stack: str):
    """The rules do apply to it (not just match nothing): its account and label are seen."""
    pod = _pod(stack, "deploy")
    assert pod["spec"]["serviceAccountName"] == _config(stack).service_accounts["deployer"]
    assert pod["metadata"]["labels"][IMAGE_LABEL] == "deployer"


@pytest.mark.parametrize("stack", STACKS)
def test_deployer_account_with_another_image_is_refused(stack: str):
    pod = _pod(stack, "deploy")
    _container(pod, "base")["image"] = _config(stack).images.ref("trainer")
    refused = _refused(stack, pod)
    assert _codes(refused) == {"MLP206"} and "deployer image" in refused[0], refused
    # Patching the image of a running deploy pod is refused as well.
    assert _refused(stack, pod, "UPDATE") == refused


@pytest.mark.parametrize("stack", STACKS)
def test_deployer_account_with_an_extra_container_or_init_container_is_refused(stack: str):
    pod = _pod(stack, "deploy")
    extra = {"name": "helper", "image": "alpine:3.24.2", "command": ["sh"]}
    pod["spec"]["initContainers"] = [extra]
    assert _codes(_refused(stack, pod)) == {"MLP206"}
    pod = _pod(stack, "deploy")
    # The sidecar's name does not make any image the sidecar's.
    _container(pod, XCOM_SIDECAR)["image"] = "python:3.12"
    assert _codes(_refused(stack, pod)) == {"MLP206"}


@pytest.mark.parametrize("stack", STACKS)
def test_deployer_account_with_a_command_is_refused(stack: str):
    pod = _pod(stack, "deploy")
    _container(pod, "base")["command"] = ["python", "-c", "print(open('/var/run/x').read())"]
    refused = _refused(stack, pod)
    assert len(refused) == 1 and "entrypoint" in refused[0], refused
    assert _codes(refused) == {"MLP206"}


@pytest.mark.parametrize("stack", STACKS)
def test_deployer_account_without_the_label_is_refused(stack: str):
    pod = _pod(stack, "deploy")
    del pod["metadata"]["labels"][IMAGE_LABEL]
    refused = _refused(stack, pod)
    assert len(refused) == 1 and f"carries {IMAGE_LABEL}=deployer" in refused[0], refused


@pytest.mark.parametrize("stack", STACKS)
def test_deployer_token_in_the_sidecar_or_automounted_is_refused(stack: str):
    pod = _pod(stack, "deploy")
    token_mount = next(
        m for m in _container(pod, "base")["volumeMounts"] if m["name"] == "deployer-api-access"
    )
    _container(pod, XCOM_SIDECAR)["volumeMounts"].append(token_mount)
    refused = _refused(stack, pod)
    assert len(refused) == 1 and "only the deployer container" in refused[0], refused
    pod = _pod(stack, "deploy")
    pod["spec"]["automountServiceAccountToken"] = True
    refused = _refused(stack, pod)
    assert len(refused) == 1 and "automountServiceAccountToken" in refused[0], refused


@pytest.mark.parametrize("stack", STACKS)
def test_another_pod_wearing_the_deployer_label_is_refused(stack: str):
    pod = _pod(stack, "train")
    pod["metadata"]["labels"][IMAGE_LABEL] = "deployer"
    refused = _refused(stack, pod)
    assert len(refused) == 1 and "reach the Kubernetes API" in refused[0], refused
    assert _codes(refused) == {"MLP206"}


def _other_team(stack: str, team_account: str) -> str:
    config = _config(stack)
    return next(t.team for t in config.teams.values() if t.service_account != team_account)


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("where", ["envFrom", "env", "volume", "projected"])
def test_a_team_pod_with_another_teams_secret_is_refused(stack: str, where: str):
    pod = _pod(stack, "train")
    account = pod["spec"]["serviceAccountName"]
    other = _config(stack).team_identity(_other_team(stack, account))
    assert other is not None
    # Its MLflow login: the one team Secret every stack has (GCP has no storage Secrets).
    secret, base = other.mlflow_secret, _container(pod, "base")
    if where == "envFrom":
        base["envFrom"].append({"secretRef": {"name": secret}})
    elif where == "env":
        ref = {"secretKeyRef": {"name": secret, "key": "MLFLOW_TRACKING_PASSWORD"}}
        base.setdefault("env", []).append({"name": "KEY", "valueFrom": ref})
    elif where == "volume":
        pod["spec"]["volumes"].append({"name": "stolen", "secret": {"secretName": secret}})
    else:
        source = {"secret": {"name": secret}}
        pod["spec"]["volumes"].append({"name": "stolen", "projected": {"sources": [source]}})
    refused = _refused(stack, pod)
    assert len(refused) == 1 and _codes(refused) == {"MLP207"}, refused


@pytest.mark.parametrize("stack", STACKS)
def test_a_team_pod_with_its_own_secrets_or_none_is_admitted(stack: str):
    pod = _pod(stack, "train")
    account = pod["spec"]["serviceAccountName"]
    pod["spec"]["volumes"].append({"name": "own", "secret": {"secretName": f"{account}-mlflow"}})
    assert _refused(stack, pod) == []
    pod["spec"]["volumes"].append({"name": "other", "secret": {"secretName": "postgres-admin"}})
    assert _codes(_refused(stack, pod)) == {"MLP207"}


def test_a_team_cannot_take_a_longer_teams_secret_by_its_prefix():
    """Team `a` (team-a) may not reference `team-a-b-storage`, which is team `a-b`'s."""
    names = admission_policies.Names(
        namespace="ml-training",
        deployer_account="ml-deployer",
        deployer_image="registry/deployer:1",
        team_accounts=("team-ml-platform", "team-a", "team-a-b"),
    )
    spec = admission_policies.team_secrets_policy_spec(names)

    def pod(account: str, secret: str) -> dict[str, Any]:
        container = {"name": "base", "image": "x", "envFrom": [{"secretRef": {"name": secret}}]}
        return {
            "metadata": {"namespace": "ml-training"},
            "spec": {"serviceAccountName": account, "containers": [container]},
        }

    assert refusals(spec, pod_request(pod("team-a", "team-a-storage"))) == []
    assert refusals(spec, pod_request(pod("team-a-b", "team-a-b-storage"))) == []
    assert refusals(spec, pod_request(pod("team-a", "team-a-b-storage")))
    assert refusals(spec, pod_request(pod("team-a-b", "team-a-storage")))
    # Not a team account: this policy leaves it to the others.
    assert refusals(spec, pod_request(pod("ml-training-runner", "team-a-storage"))) == []


@pytest.mark.parametrize("stack", STACKS)
def test_exec_and_attach_reach_only_the_xcom_sidecar(stack: str):
    policies = _policies(stack)
    training = _config(stack).namespaces["training"]
    assert all_refusals(policies, exec_request(training, XCOM_SIDECAR)) == []
    assert all_refusals(policies, exec_request(training, XCOM_SIDECAR, attach=True)) == []
    for container in ("base", None):
        for attach in (False, True):
            refused = all_refusals(policies, exec_request(training, container, attach))
            assert len(refused) == 1 and XCOM_SIDECAR in refused[0], (container, refused)
    # Only the training namespace is the policies' business.
    airflow = _config(stack).namespaces["airflow"]
    assert all_refusals(policies, exec_request(airflow, "base")) == []


@pytest.mark.parametrize("stack", STACKS)
def test_pods_of_other_namespaces_are_not_matched(stack: str):
    pod = _pod(stack, "deploy")
    _container(pod, "base")["image"] = "python:3.12"
    pod["metadata"]["namespace"] = _config(stack).namespaces["serving"]
    assert _refused(stack, pod) == []
