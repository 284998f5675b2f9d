"""The local runtime runs a plain KubernetesPodOperator (the textbook GPU operator) as a local
process when its image is a platform image, and fails a foreign image at once, in one line,
with an exception Airflow does not retry."""

from __future__ import annotations

import pytest
from airflow.providers.cncf.kubernetes.operators import pod as kpo_module
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk.exceptions import AirflowFailException
from kubernetes.client import models as k8s

from ml_platform.local.runner import NoLocalImage, run_every_pod_locally
from ml_platform.policies import pod_mutation_hook
from ml_platform.settings import PlatformConfig

SIZE = {"cpu": "1", "memory": "2Gi"}


@pytest.fixture(autouse=True)
def _local_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the local runtime's airflow_local_settings and run_dag install."""
    monkeypatch.setattr(kpo_module, "pod_mutation_hook", pod_mutation_hook)
    monkeypatch.setattr(KubernetesPodOperator, "execute", KubernetesPodOperator.execute)
    run_every_pod_locally()


def _textbook(image: str, arguments: list[str]) -> KubernetesPodOperator:
    return KubernetesPodOperator(
        task_id="train",
        image=image,
        arguments=arguments,
        container_resources=k8s.V1ResourceRequirements(
            requests=SIZE, limits={**SIZE, "nvidia.com/gpu": "1"}
        ),
    )


def test_a_textbook_gpu_operator_runs_as_the_platform_image(
    platform: PlatformConfig, capfd: pytest.CaptureFixture[str]
) -> None:
    operator = _textbook(platform.images.ref("trainer"), ["--help"])
    operator.execute(None)  # no cluster configured: a cluster attempt would raise
    logged = capfd.readouterr().out  # the task's logger writes to stdout
    assert "would run on pool 'gpu'" in logged
    assert "usage: trainer" in logged


def test_a_foreign_image_fails_at_once_in_one_line(platform: PlatformConfig) -> None:
    operator = _textbook(f"{platform.images.registry}/someone-elses:1.0", ["train"])
    with pytest.raises(NoLocalImage) as raised:
        operator.execute(None)
    assert isinstance(raised.value, AirflowFailException)  # Airflow does not retry it
    message = str(raised.value)
    assert "someone-elses:1.0 is not a platform image" in message
    assert "\n" not in message
