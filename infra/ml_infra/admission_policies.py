"""Admission policies: what the API server itself refuses in the training namespace.

RBAC cannot narrow `pods/exec` to a container, and the Airflow-side checks (task_policy,
pod_mutation_hook: ml_platform.deployer_rules, ml_platform.team_identities) see only the pods
Airflow builds. Anything running under Airflow's identity may talk to the API directly, so
ValidatingAdmissionPolicies (admissionregistration.k8s.io/v1, Kubernetes 1.30+) hold the same
lines for every request into the training namespace:

- exec and attach reach only Airflow's XCom sidecar (KubernetesPodOperator reads results by
  exec'ing `cat` in it), never a task's own container, which holds its team's credentials or
  the deployer's API token;
- MLP206: a pod running as the deployer account runs the platform's deployer image (and the
  XCom sidecar) with the image's own entrypoint, wears `ml-platform/image=deployer`, takes no
  automounted token and mounts its projected token in the deployer container alone; a pod
  wearing that label (which the NetworkPolicies open the Kubernetes API to) runs as the
  deployer account;
- MLP207: a pod running as a team's account `team-<team>` references (env, envFrom, volumes)
  only Secrets named `team-<team>-*`.

Pod rules cover CREATE and UPDATE (a pod's images and labels can be patched). The names come
from the stack config, as the platform document hands them to the DAG library.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ml_infra.config import StackConfig
from ml_infra.conventions import IMAGE_LABEL
from ml_infra.kube import k8s_opts, metadata
from ml_infra.network_policies import NAMESPACE_NAME_LABEL
from ml_infra.team_identities import team_identities

# KubernetesPodOperator's XCom sidecar as the cncf.kubernetes provider builds it
# (airflow.providers.cncf.kubernetes.utils.xcom_sidecar.PodDefaults; tests hold the two equal).
XCOM_SIDECAR = "airflow-xcom-sidecar"
XCOM_SIDECAR_IMAGE = "alpine:3.24.2"
DEPLOYER_LABEL_VALUE = "deployer"

EXEC_POLICY = "ml-platform-exec-xcom-sidecar-only"
DEPLOYER_POLICY = "ml-platform-deployer-pods"
TEAM_SECRETS_POLICY = "ml-platform-team-secrets"


@dataclass(frozen=True)
class Names:
    """What the policies compare against, from the stack config."""

    namespace: str  # training
    deployer_account: str
    deployer_image: str
    team_accounts: tuple[str, ...]


def stack_names(config: StackConfig) -> Names:
    return Names(
        namespace=config.namespaces["training"],
        deployer_account=config.service_accounts["deployer"],
        deployer_image=config.images.ref("deployer"),
        team_accounts=tuple(identity.service_account for identity in team_identities(config)),
    )


def _lit(value: str) -> str:
    """A CEL string literal (JSON's escapes are CEL's)."""
    return json.dumps(value)


def _list(values: Sequence[str]) -> str:
    return "[" + ", ".join(_lit(v) for v in values) + "]"


def _validation(expression: str, message: str) -> dict[str, str]:
    return {"expression": expression, "message": message, "reason": "Forbidden"}


def _match(names: Names, operations: list[str], resources: list[str]) -> dict[str, Any]:
    return {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: names.namespace}},
        "resourceRules": [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": operations,
                "resources": resources,
            }
        ],
    }


def exec_policy_spec(names: Names) -> dict[str, Any]:
    """CONNECT's object is the PodExecOptions / PodAttachOptions of the request."""
    return {
        "failurePolicy": "Fail",
        "matchConstraints": _match(names, ["CONNECT"], ["pods/exec", "pods/attach"]),
        "validations": [
            _validation(
                f"has(object.container) && object.container == {_lit(XCOM_SIDECAR)}",
                f"exec and attach in namespace {names.namespace} reach only the container "
                f"{XCOM_SIDECAR} (KubernetesPodOperator's XCom), never a task's own container "
                "and its credentials",
            )
        ],
    }


# Every container of a pod, init containers included (ephemeral ones come by a subresource
# no platform account may use).
_CONTAINERS = (
    "object.spec.containers + (has(object.spec.initContainers) ? object.spec.initContainers : [])"
)
_ACCOUNT = "has(object.spec.serviceAccountName) ? object.spec.serviceAccountName : ''"


def deployer_policy_spec(names: Names) -> dict[str, Any]:
    """MLP206 at the API: the deployer account and the deployer label go together, with the
    platform's deployer image on its own entrypoint, and its token only where it is used."""
    deployer_image = _lit(names.deployer_image)
    labelled = (
        f"has(object.metadata.labels) && {_lit(IMAGE_LABEL)} in object.metadata.labels && "
        f"object.metadata.labels[{_lit(IMAGE_LABEL)}] == {_lit(DEPLOYER_LABEL_VALUE)}"
    )
    token_volumes = (
        "has(object.spec.volumes) ? object.spec.volumes.filter(v, has(v.projected) && "
        "has(v.projected.sources) && v.projected.sources.exists(s, has(s.serviceAccountToken))"
        ").map(v, v.name) : []"
    )
    account = f"the deployer account {names.deployer_account}"
    return {
        "failurePolicy": "Fail",
        "matchConstraints": _match(names, ["CREATE", "UPDATE"], ["pods"]),
        "variables": [
            {"name": "containers", "expression": _CONTAINERS},
            {"name": "asDeployer", "expression": f"({_ACCOUNT}) == {_lit(names.deployer_account)}"},
            {"name": "labelled", "expression": labelled},
            {"name": "tokenVolumes", "expression": token_volumes},
        ],
        "validations": [
            _validation(
                "!variables.asDeployer || variables.containers.all(c, c.image == "
                f"{deployer_image} || (c.name == {_lit(XCOM_SIDECAR)} && c.image == "
                f"{_lit(XCOM_SIDECAR_IMAGE)}))",
                f"MLP206: a pod running as {account} runs only the platform's deployer image "
                f"{names.deployer_image} (and Airflow's XCom sidecar)",
            ),
            _validation(
                "!variables.asDeployer || variables.containers.all(c, c.image != "
                f"{deployer_image} || !has(c.command) || size(c.command) == 0)",
                f"MLP206: a pod running as {account} runs the deployer image's own entrypoint "
                "(no command)",
            ),
            _validation(
                "!variables.asDeployer || variables.labelled",
                f"MLP206: a pod running as {account} carries {IMAGE_LABEL}={DEPLOYER_LABEL_VALUE}",
            ),
            _validation(
                "!variables.labelled || variables.asDeployer",
                f"MLP206: a pod carrying {IMAGE_LABEL}={DEPLOYER_LABEL_VALUE}, which lets it "
                f"reach the Kubernetes API, runs as {account}",
            ),
            _validation(
                "!variables.asDeployer || (has(object.spec.automountServiceAccountToken) && "
                "!object.spec.automountServiceAccountToken)",
                f"MLP206: a pod running as {account} sets automountServiceAccountToken: false "
                "(its token is projected into the deployer container alone)",
            ),
            _validation(
                "!variables.asDeployer || variables.containers.all(c, c.image == "
                f"{deployer_image} || !has(c.volumeMounts) || c.volumeMounts.all(m, "
                "!(m.name in variables.tokenVolumes)))",
                f"MLP206: in a pod running as {account} only the deployer container mounts a "
                "service account token",
            ),
        ],
    }


def _team_secret(name: str) -> str:
    """CEL: Secret `name` is the running team's (`team-<team>-*`), and no longer team
    account's prefix claims it (team `a` may not take `team-a-b-storage` of team `a-b`)."""
    return (
        f"({name}.startsWith(variables.account + '-') && variables.teamAccounts.all(a, "
        f"a == variables.account || size(a) <= size(variables.account) || "
        f"!{name}.startsWith(a + '-')))"
    )


def _name_of(ref: str, field: str = "name") -> str:
    return f"(has({ref}.{field}) ? {ref}.{field} : '')"


def team_secrets_policy_spec(names: Names) -> dict[str, Any]:
    """MLP207 at the API: a team's pods reference only the team's own Secrets."""
    applies = "!(variables.account in variables.teamAccounts)"
    message = (
        "MLP207: a pod running as a team's account team-<team> references only the team's "
        "Secrets team-<team>-* ({})"
    )
    env = (
        f"{applies} || variables.containers.all(c, !has(c.env) || c.env.all(e, "
        "!has(e.valueFrom) || !has(e.valueFrom.secretKeyRef) || "
        f"{_team_secret(_name_of('e.valueFrom.secretKeyRef'))}))"
    )
    env_from = (
        f"{applies} || variables.containers.all(c, !has(c.envFrom) || c.envFrom.all(s, "
        f"!has(s.secretRef) || {_team_secret(_name_of('s.secretRef'))}))"
    )
    volumes = (
        f"{applies} || !has(object.spec.volumes) || object.spec.volumes.all(v, "
        f"(!has(v.secret) || {_team_secret(_name_of('v.secret', 'secretName'))}) && "
        "(!has(v.projected) || !has(v.projected.sources) || v.projected.sources.all(s, "
        f"!has(s.secret) || {_team_secret(_name_of('s.secret'))})))"
    )
    return {
        "failurePolicy": "Fail",
        "matchConstraints": _match(names, ["CREATE", "UPDATE"], ["pods"]),
        "variables": [
            {"name": "containers", "expression": _CONTAINERS},
            {"name": "account", "expression": _ACCOUNT},
            {"name": "teamAccounts", "expression": _list(names.team_accounts)},
        ],
        "validations": [
            _validation(env, message.format("env valueFrom")),
            _validation(env_from, message.format("envFrom")),
            _validation(volumes, message.format("volumes")),
        ],
    }


def policy_specs(config: StackConfig) -> dict[str, dict[str, Any]]:
    """Policy name -> ValidatingAdmissionPolicy spec."""
    names = stack_names(config)
    return {
        EXEC_POLICY: exec_policy_spec(names),
        DEPLOYER_POLICY: deployer_policy_spec(names),
        TEAM_SECRETS_POLICY: team_secrets_policy_spec(names),
    }


def declare_admission_policies(
    config: StackConfig, provider: k8s.Provider, depends_on: Sequence[pulumi.Resource] = ()
) -> list[pulumi.Resource]:
    """Each policy and its binding, which enforces it (Deny) wherever the policy matches."""
    declared: list[pulumi.Resource] = []
    for name, spec in policy_specs(config).items():
        policy = k8s.admissionregistration.v1.ValidatingAdmissionPolicy(
            f"vap-{name}",
            metadata=metadata(name),
            spec=spec,
            opts=k8s_opts(provider, depends_on),
        )
        binding = k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding(
            f"vapb-{name}",
            metadata=metadata(name),
            spec={"policyName": name, "validationActions": ["Deny"]},
            opts=k8s_opts(provider, [policy]),
        )
        declared += [policy, binding]
    return declared
