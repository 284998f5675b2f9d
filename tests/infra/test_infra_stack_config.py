"""Bad stack config fails before anything is declared, with a message naming the key."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from pulumi_harness import STACKS, engine_config, run_program_expecting_error, stack_values

from ml_infra.config import parse_stack_config
from ml_infra.config_reader import StackConfigError

Edit = Callable[[dict[str, Any]], None]


def _pools(values: dict[str, Any]) -> list[dict[str, Any]]:
    return values["ml-platform:pools"]


def _set(path: str, value: Any) -> Edit:
    """An edit that sets `ml-platform:<top>.<a>.<b>` (list indexes as numbers)."""
    top, *rest = path.split(".")

    def edit(values: dict[str, Any]) -> None:
        target = values[f"ml-platform:{top}"]
        for part in rest[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        last = rest[-1]
        if value is _DELETE:
            del target[int(last) if last.isdigit() else last]
        elif last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value

    return edit


_DELETE = object()


def _teams(teams: Any) -> Edit:
    def edit(values: dict[str, Any]) -> None:
        values["ml-platform:teams"] = teams

    return edit


# (stack, edit, the key the message must name, what it must say)
BAD_CONFIGS = {
    "the Kubernetes API open to everyone": (
        "prod",
        _set("aws.api_allowed_cidrs", ["10.0.0.0/8", "0.0.0.0/0"]),
        "ml-platform:aws.api_allowed_cidrs[1]",
        "opens the Kubernetes API to the whole internet",
    ),
    "no range may reach the Kubernetes API": (
        "dev",
        _set("gcp.api_allowed_cidrs", []),
        "ml-platform:gcp.api_allowed_cidrs",
        "list the ranges that may reach the Kubernetes API",
    ),
    "an allowed range that is no CIDR": (
        "dev",
        _set("gcp.api_allowed_cidrs", ["office"]),
        "ml-platform:gcp.api_allowed_cidrs[0]",
        "is not a CIDR block",
    ),
    "a team listed twice": (
        "kind",
        _teams(["examples", "fraud", "examples"]),
        "ml-platform:teams[2]",
        "'examples' is listed twice",
    ),
    "the platform's own team listed": (
        "dev",
        _teams(["ml-platform"]),
        "ml-platform:teams[0]",
        "is the platform's own team, always there",
    ),
    "a team name that is no Kubernetes name": (
        "prod",
        _teams(["Fraud_Team"]),
        "ml-platform:teams[0]",
        "is not a valid Kubernetes name",
    ),
    "a team whose account is a platform account": (
        "kind",
        lambda values: (
            _teams(["runner"])(values),
            _set("service_accounts.training", "team-runner")(values),
        ),
        "ml-platform:teams[0]",
        "the team's service account 'team-runner' is already service_accounts.training",
    ),
    "gpu pool on a machine type without GPU": (
        "prod",
        _set("pools.1.machine_type", "m6i.2xlarge"),
        "ml-platform:pools[1].machine_type",
        "has no GPU",
    ),
    "unknown taint effect": (
        "kind",
        _set("pools.1.taints", [{"key": "team", "value": "ml", "effect": "NoScheduel"}]),
        "ml-platform:pools[1].taints[0].effect",
        "is not one of NoSchedule, PreferNoSchedule, NoExecute",
    ),
    "max size below min size": (
        "dev",
        _set("pools.0.max_size", 0),
        "ml-platform:pools[0].max_size",
        "must be at least 1",
    ),
    "max size below a larger min size": (
        "prod",
        _set("pools.0.max_size", 1),
        "ml-platform:pools[0].max_size",
        "is below min_size 2",
    ),
    "unknown cloud": (
        "kind",
        lambda values: values.__setitem__("ml-platform:cloud", "azure"),
        "ml-platform:cloud",
        "'azure' is not one of kind, aws, gcp",
    ),
    "missing required key": (
        "prod",
        _set("storage.credentials_secret", _DELETE),
        "ml-platform:storage.credentials_secret",
        "required key is missing",
    ),
    "bad bucket name": (
        "dev",
        _set("storage.buckets.datasets", "ML_Datasets"),
        "ml-platform:storage.buckets.datasets",
        "is not a valid bucket name",
    ),
    "negative GPU count": (
        "kind",
        _set("pools.1.gpu.count", -1),
        "ml-platform:pools[1].gpu.count",
        "must be at least 1",
    ),
    "GPU type the machine does not carry": (
        "dev",
        _set("pools.1.gpu.type", "nvidia-tesla-t4"),
        "ml-platform:pools[1].gpu.type",
        "g2-standard-8 carries nvidia-l4",
    ),
    "GPU machine in a CPU pool": (
        "prod",
        _set("pools.0.machine_type", "g6.xlarge"),
        "ml-platform:pools[0].machine_type",
        "carries nvidia-l4 GPUs but the pool declares none",
    ),
    "no untainted CPU pool": (
        "kind",
        _set("pools.0.taints", [{"key": "team", "value": "x", "effect": "NoSchedule"}]),
        "ml-platform:pools",
        "needs a CPU pool without NoSchedule/NoExecute taints",
    ),
    "misspelt key": (
        "kind",
        _set("pools.0.node_alocatable", {"cpu": "1", "memory": "1Gi"}),
        "ml-platform:pools[0].node_alocatable",
        "not a known key",
    ),
    "executor whose pod hook cannot import the platform": (
        "prod",
        _set("airflow.executor", "KubernetesExecutor"),
        "ml-platform:airflow.executor",
        "is not one of LocalExecutor, CeleryExecutor",
    ),
    "training and serving in one namespace": (
        "kind",
        _set("namespaces.serving", "ml-training"),
        "ml-platform:namespaces.serving",
        "'ml-training' is already namespaces.training",
    ),
    "airflow and mlflow in one namespace": (
        "prod",
        _set("namespaces.mlflow", "airflow"),
        "ml-platform:namespaces.mlflow",
        "'airflow' is already namespaces.airflow",
    ),
    "a workload in kube-system": (
        "dev",
        _set("namespaces.training", "kube-system"),
        "ml-platform:namespaces.training",
        "run by Kubernetes itself",
    ),
    "one name for two service accounts": (
        "kind",
        _set("service_accounts.deployer", "ml-training-runner"),
        "ml-platform:service_accounts.deployer",
        "'ml-training-runner' is already service_accounts.training",
    ),
    "GPU quota with no GPU pool": (
        "kind",
        lambda values: values["ml-platform:pools"].pop(1),
        "ml-platform:training.gpu_quota",
        "2 GPUs, but no pool has GPUs",
    ),
    "GPU quota above what the pools ever hold": (
        "prod",
        _set("training.gpu_quota", 17),
        "ml-platform:training.gpu_quota",
        "17 GPUs, but the GPU pools hold at most 16",
    ),
    "a moving tag in prod": (
        "prod",
        _set("images.tag", "latest"),
        "ml-platform:images.tag",
        "'latest' is a tag that moves",
    ),
    "GPU quota below one node's GPUs": (
        "prod",
        _set("training.gpu_quota", 2),
        "ml-platform:training.gpu_quota",
        "below the 4 GPU(s) of the largest GPU node",
    ),
    "local DAGs on a cloud": (
        "dev",
        _set("airflow.dags", {"source": "local", "node_path": "/x"}),
        "ml-platform:airflow.dags.source",
        "'local' mounts a checkout into kind's nodes",
    ),
    "a storage Secret on GCP": (
        "dev",
        _set("storage.credentials_secret", "ml-storage-credentials"),
        "ml-platform:storage.credentials_secret",
        "not used on gcp (pods reach GCS with Workload Identity",
    ),
    "GCP project not set": (
        "dev",
        lambda values: values.pop("gcp:project"),
        "gcp:project",
        "required key is missing",
    ),
    "a kind node in two pools": (
        "kind",
        _set("pools.1.nodes", ["ml-platform-worker"]),
        "ml-platform:pools[1].nodes",
        "ml-platform-worker is already in pool cpu",
    ),
    "bad node allocatable quantity": (
        "kind",
        _set("pools.0.node_allocatable.memory", "lots"),
        "ml-platform:pools[0].node_allocatable.memory",
        "is not a Kubernetes quantity",
    ),
    "GPU stand-in on a cloud pool": (
        "dev",
        _set("pools.1.gpu.stands_in_for", ["nvidia-a10g"]),
        "ml-platform:pools[1].gpu.stands_in_for",
        "only kind's emulated GPUs stand in for other types",
    ),
    "GPU stand-in list that is not a list": (
        "kind",
        _set("pools.1.gpu.stands_in_for", "nvidia-l4"),
        "ml-platform:pools[1].gpu.stands_in_for",
        "expected a list",
    ),
    "GPU stand-in that is the pool's own type": (
        "kind",
        _set("pools.1.gpu.stands_in_for", ["nvidia-l4", "emulated-gpu"]),
        "ml-platform:pools[1].gpu.stands_in_for[1]",
        "'emulated-gpu' is the pool's own gpu.type",
    ),
    "GPU stand-in listed twice": (
        "kind",
        _set("pools.1.gpu.stands_in_for", ["nvidia-l4", "nvidia-l4"]),
        "ml-platform:pools[1].gpu.stands_in_for[1]",
        "'nvidia-l4' is listed twice",
    ),
    "GPU stand-in that is not a label value": (
        "kind",
        _set("pools.1.gpu.stands_in_for", ["NVIDIA L4"]),
        "ml-platform:pools[1].gpu.stands_in_for[0]",
        "is not a valid label value",
    ),
    "GPU stand-in for a type another pool really has": (
        "kind",
        lambda values: _pools(values).append(
            {
                "name": "l4",
                "nodes": ["ml-platform-worker3"],
                "gpu": {"type": "nvidia-l4", "count": 1},
                "node_allocatable": {"cpu": "4", "memory": "8Gi"},
            }
        ),
        "ml-platform:pools[1].gpu.stands_in_for[0]",
        "pool l4 has real nvidia-l4 GPUs",
    ),
}


def _engine_config(values: dict[str, Any]) -> dict[str, str]:
    return {
        key: json.dumps(value) if isinstance(value, dict | list) else str(value)
        for key, value in values.items()
    }


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_fails_naming_the_key_and_declares_nothing(case: str):
    stack, edit, key, says = BAD_CONFIGS[case]
    values = copy.deepcopy(stack_values(stack))
    edit(values)
    error, declared = run_program_expecting_error(stack, _engine_config(values))
    assert isinstance(error, StackConfigError), repr(error)
    message = str(error)
    assert message.startswith(f"{key}:"), message
    assert says in message, message
    assert "\n" not in message
    assert declared == 0, f"{declared} resources were declared before the error"


@pytest.mark.parametrize("stack", STACKS)
def test_committed_stack_configs_are_valid(stack: str):
    values = stack_values(stack)
    ours = {k.split(":", 1)[1]: v for k, v in values.items() if k.startswith("ml-platform:")}
    others = {k: v for k, v in values.items() if not k.startswith("ml-platform:")}
    config = parse_stack_config(stack, ours, others)
    assert config.environment == stack
    assert any(pool.has_gpus for pool in config.pools)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_cloud_stacks_need_the_organisation_settings(stack: str):
    """What each organisation sets itself is not committed, and its absence is explained."""
    config = engine_config(stack)
    images = json.loads(config["ml-platform:images"])
    del images["registry"]
    config["ml-platform:images"] = json.dumps(images)
    error, declared = run_program_expecting_error(stack, config)
    assert re.fullmatch(r"ml-platform:images\.registry: required key is missing", str(error))
    assert declared == 0


def test_a_values_file_may_not_set_a_computed_key(tmp_path, monkeypatch):
    from ml_infra import helm_values

    for name in ("values-common.yaml", "values-kind.yaml"):
        (tmp_path / "airflow").mkdir(exist_ok=True)
        (tmp_path / "airflow" / name).write_text("")
    (tmp_path / "airflow" / "values-kind.yaml").write_text("data:\n  metadataSecretName: x\n")
    monkeypatch.setattr(helm_values, "HELM_DIR", tmp_path)
    with pytest.raises(StackConfigError, match=r"values-kind.yaml: data.metadataSecretName is"):
        helm_values.load_values_files("airflow", "kind", ("data",))
