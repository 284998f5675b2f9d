"""ML_PLATFORM_CONFIG (inline JSON or a file path) overrides the kind default; bad ones say why."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from ml_platform.settings import (
    CONFIG_ENV,
    DEFAULT_CONFIG_FILE,
    PlatformConfigError,
    Taint,
    platform_config,
)

DEFAULT_DOC = json.loads(DEFAULT_CONFIG_FILE.read_text())


def _staging() -> dict:
    doc = copy.deepcopy(DEFAULT_DOC)
    doc["environment"] = "staging"
    doc["namespaces"]["training"] = "training-staging"
    doc["pools"][1]["gpu"] = {"type": "l4", "count": 4}
    return doc


def test_default_is_the_kind_stack(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    config = platform_config()
    assert config.environment == "kind"
    assert [pool.name for pool in config.pools] == ["cpu", "gpu"]
    gpu = config.pool("gpu")
    assert gpu.taints == (Taint("nvidia.com/gpu", "present", "NoSchedule"),)
    assert gpu.gpus_per_node >= 1
    assert not config.pool("cpu").has_gpus


def test_inline_json_overrides_the_default(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(CONFIG_ENV, json.dumps(_staging()))
    config = platform_config()
    assert config.environment == "staging"
    assert config.namespaces["training"] == "training-staging"
    assert (config.pool("gpu").gpu_type, config.pool("gpu").gpus_per_node) == ("l4", 4)


def test_file_path_overrides_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    path = tmp_path / "platform.staging.json"
    path.write_text(json.dumps(_staging()))
    monkeypatch.setenv(CONFIG_ENV, str(path))
    assert platform_config().environment == "staging"


def test_config_follows_the_environment_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(CONFIG_ENV, json.dumps(_staging()))
    assert platform_config().environment == "staging"
    monkeypatch.delenv(CONFIG_ENV)
    assert platform_config().environment == "kind"


def _without(*path: str | int) -> Callable[[dict], None]:
    def mutate(doc: dict) -> None:
        *parents, last = path
        for key in parents:
            doc = doc[key]
        del doc[last]

    return mutate


def _setting(value: object, *path: str | int) -> Callable[[dict], None]:
    def mutate(doc: dict) -> None:
        *parents, last = path
        for key in parents:
            doc = doc[key]
        doc[last] = value

    return mutate


MALFORMED = {
    "missing mlflow": (_without("mlflow"), "missing key mlflow"),
    "missing tracking uri": (_without("mlflow", "tracking_uri"), "missing key mlflow.tracking_uri"),
    "missing registry": (_without("images", "registry"), "missing key images.registry"),
    "missing pools": (_without("pools"), "missing key pools"),
    "missing pool name": (_without("pools", 1, "name"), "missing key pools[1].name"),
    "missing pool labels": (_without("pools", 1, "labels"), "missing key pools[1].labels"),
    "empty pool labels": (_setting({}, "pools", 0, "labels"), "pools[0].labels must select"),
    "bad taint effect": (
        _setting("NeverSchedule", "pools", 1, "taints", 0, "effect"),
        "pools[1].taints[0].effect 'NeverSchedule' is not one of",
    ),
    "taint without key": (
        _without("pools", 1, "taints", 0, "key"),
        "missing key pools[1].taints[0].key",
    ),
    "gpu count 0": (_setting(0, "pools", 1, "gpu", "count"), "pools[1].gpu.count must be"),
    "stand-in types not a list": (
        _setting("nvidia-l4", "pools", 1, "gpu", "stands_in_for"),
        "pools[1].gpu.stands_in_for must be a list of GPU type names",
    ),
    "empty pools": (_setting([], "pools"), "pools is empty"),
    "team without an mlflow login": (
        _without("teams", "examples", "mlflow_secret"),
        "missing key teams.examples.mlflow_secret",
    ),
    "empty storage secret": (
        _setting("", "teams", "examples", "storage_secret"),
        "teams.examples.storage_secret must be a non-empty string",
    ),
}


@pytest.mark.parametrize(("mutate", "message"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_config_names_the_key(
    mutate: Callable[[dict], None], message: str, monkeypatch: pytest.MonkeyPatch
):
    doc = copy.deepcopy(DEFAULT_DOC)
    mutate(doc)
    monkeypatch.setenv(CONFIG_ENV, json.dumps(doc))
    with pytest.raises(PlatformConfigError, match=f"^{CONFIG_ENV}: {re.escape(message)}"):
        platform_config()


def test_inline_text_that_is_not_json(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(CONFIG_ENV, '{"environment": "kind",')
    with pytest.raises(PlatformConfigError, match=f"^{CONFIG_ENV}: not valid JSON"):
        platform_config()


def test_file_that_is_not_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    path = tmp_path / "platform.json"
    path.write_text("environment: kind\n")  # YAML, not JSON
    monkeypatch.setenv(CONFIG_ENV, str(path))
    with pytest.raises(PlatformConfigError, match=f"{re.escape(str(path))} is not valid JSON"):
        platform_config()


def test_path_that_does_not_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(PlatformConfigError, match="neither JSON nor an existing file"):
        platform_config()


def test_unknown_platform_image_names_the_known_ones(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    with pytest.raises(PlatformConfigError, match=r"'serving' \(known: deployer, trainer\)"):
        platform_config().images.ref("serving")


def test_a_team_without_a_storage_secret_has_its_mlflow_login_alone(
    monkeypatch: pytest.MonkeyPatch,
):
    """GCP's documents: the team's service account carries its storage identity (Workload
    Identity), so no storage Secret is named and pods get none."""
    doc = copy.deepcopy(DEFAULT_DOC)
    del doc["teams"]["examples"]["storage_secret"]
    monkeypatch.setenv(CONFIG_ENV, json.dumps(doc))
    team = platform_config().team_identity("examples")
    assert team is not None
    assert team.storage_secret is None
    assert team.secrets == ("team-examples-mlflow",)
    assert platform_config().team_identity("ml-platform").secrets == (
        "team-ml-platform-mlflow",
        "team-ml-platform-storage",
    )
