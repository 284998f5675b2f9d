"""select_pool: CPU work on the untainted CPU pool, GPU work on the smallest pool that fits."""

from __future__ import annotations

import json

import pytest

from ml_platform.pools import NoPoolError, select_pool
from ml_platform.settings import DEFAULT_CONFIG_FILE, PlatformConfig, parse_config

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def _gpu_pool(name: str, gpu_type: str, count: int) -> dict:
    return {
        "name": name,
        "labels": {"ml-platform/pool": name},
        "taints": [GPU_TAINT],
        "gpu": {"type": gpu_type, "count": count},
    }


def _config(*pools: dict) -> PlatformConfig:
    doc = json.loads(DEFAULT_CONFIG_FILE.read_text())
    doc["environment"] = "test"
    doc["pools"] = list(pools)
    return parse_config(doc)


CPU = {"name": "cpu", "labels": {"ml-platform/pool": "cpu"}}
TAINTED_CPU = {**CPU, "name": "system", "taints": [{"key": "system", "effect": "NoSchedule"}]}
# Listed largest first: the choice must not depend on the order of the catalog.
CLOUD = _config(
    TAINTED_CPU,
    _gpu_pool("a100x8", "a100", 8),
    _gpu_pool("a100x2", "a100", 2),
    CPU,
    _gpu_pool("t4x1", "t4", 1),
)


@pytest.mark.parametrize(
    ("gpus", "gpu_type", "pool"),
    [
        (0, None, "cpu"),
        (1, None, "t4x1"),
        (2, None, "a100x2"),
        (3, None, "a100x8"),
        (8, None, "a100x8"),
        (1, "a100", "a100x2"),
        (1, "t4", "t4x1"),
    ],
)
def test_smallest_fitting_pool(gpus: int, gpu_type: str | None, pool: str):
    assert select_pool(CLOUD, gpus=gpus, gpu_type=gpu_type).name == pool


def test_unknown_gpu_type_names_what_is_offered():
    with pytest.raises(NoPoolError) as raised:
        select_pool(CLOUD, gpus=1, gpu_type="h100")
    message = str(raised.value)
    assert "of type 'h100'" in message
    for offered in ("a100x8 (8x a100)", "a100x2 (2x a100)", "t4x1 (1x t4)"):
        assert offered in message


def test_too_many_gpus_names_what_is_offered():
    with pytest.raises(NoPoolError, match=r"offers 9 GPU\(s\) on one node .*a100x8 \(8x a100\)"):
        select_pool(CLOUD, gpus=9)


def test_too_many_gpus_of_a_type():
    with pytest.raises(NoPoolError, match=r"2 GPU\(s\) of type 't4'"):
        select_pool(CLOUD, gpus=2, gpu_type="t4")


def test_cpu_only_environment_has_no_gpu_pools():
    with pytest.raises(NoPoolError, match=r"GPU pools: none"):
        select_pool(_config(CPU), gpus=1)


def test_only_tainted_cpu_pools():
    with pytest.raises(NoPoolError, match="no untainted CPU pool"):
        select_pool(_config(TAINTED_CPU, _gpu_pool("t4x1", "t4", 1)), gpus=0)


@pytest.mark.parametrize(
    ("gpus", "gpu_type", "message"),
    [(-1, None, "cannot be negative"), (0, "t4", "ask for at least 1 GPU")],
)
def test_nonsense_requests(gpus: int, gpu_type: str | None, message: str):
    with pytest.raises(NoPoolError, match=message):
        select_pool(CLOUD, gpus=gpus, gpu_type=gpu_type)
