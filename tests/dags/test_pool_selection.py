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


# kind: emulated GPUs that stand in for the production type, beside a real pool of it.
STAND_IN = {
    **_gpu_pool("emulated", "emulated-gpu", 2),
    "gpu": {"type": "emulated-gpu", "count": 2, "stands_in_for": ["nvidia-l4"]},
}
KIND_LIKE = _config(CPU, STAND_IN)


def test_a_production_type_lands_on_the_pool_standing_in_for_it():
    pool = select_pool(KIND_LIKE, gpus=1, gpu_type="nvidia-l4")
    assert pool.name == "emulated"
    # Its affinity selects the labels its nodes carry, not the production type.
    assert pool.gpu_type == "emulated-gpu"
    assert select_pool(KIND_LIKE, gpus=2, gpu_type="emulated-gpu").name == "emulated"


def test_the_real_type_wins_over_a_stand_in():
    config = _config(CPU, STAND_IN, _gpu_pool("l4x4", "nvidia-l4", 4))
    assert select_pool(config, gpus=1, gpu_type="nvidia-l4").name == "l4x4"


def test_a_stand_in_offers_no_more_gpus_than_it_has():
    with pytest.raises(NoPoolError) as raised:
        select_pool(KIND_LIKE, gpus=4, gpu_type="nvidia-l4")
    message = str(raised.value)
    assert "(GPU pools: emulated (2x emulated-gpu, stands in for nvidia-l4))" in message
    # No pool has 4 GPUs of any type: leaving gpu_type out would not help either.
    assert "without gpu_type" not in message


def test_only_a_gpu_type_that_was_set_is_suggested_away():
    with pytest.raises(NoPoolError) as typed:
        select_pool(CLOUD, gpus=1, gpu_type="h100")
    assert str(typed.value).endswith("; without gpu_type='h100' it would take any GPU type")
    with pytest.raises(NoPoolError) as untyped:
        select_pool(CLOUD, gpus=9)
    assert "gpu_type" not in str(untyped.value)
