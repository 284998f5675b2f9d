"""The local runtime runs a plain KubernetesPodOperator (the textbook GPU operator) as a local
process when its image is a platform image, and fails a foreign image at once, in one line,
with an exception Airflow does not retry."""

from __future__ import annotations

import pytest
from airflow.providers.cncf.kubernetes.operators import pod as kpo_module
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk.exceptions import AirflowFailException
from kubernetes.client import models as k8s

from ml_platform.local.runner import NoLocalImage, Unschedulable, run_every_pod_locally
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


def test_a_pod_no_pool_takes_fails_at_once_in_one_line(platform: PlatformConfig) -> None:
    train = KubernetesPodOperator(
        task_id="train",
        image=platform.images.ref("trainer"),
        arguments=["--help"],
        container_resources=k8s.V1ResourceRequirements(
            requests=SIZE, limits={**SIZE, "nvidia.com/gpu": "8"}
        ),
    )
    with pytest.raises(Unschedulable) as raised:
        train.execute(None)
    assert isinstance(raised.value, AirflowFailException)  # the same pod on every try
    assert "offers 8 GPU(s)" in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.slow
def test_make_run_dag_runs_a_textbook_dag_whole(tmp_path) -> None:
    """`make run-dag` on a DAG of plain KubernetesPodOperators: Airflow runs it in the local
    runtime (policies, hook and all), the pod as a local process of the platform image."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from ml_platform.local.mlflow_server import free_port

    repo = Path(__file__).resolve().parents[2]
    dags = tmp_path / "dags"
    dags.mkdir()
    # The checks' textbook GPU DAG, its container asked for what needs no data.
    textbook = (repo / "tests/checks/good_dags/textbook_gpu_pod.py").read_text()
    assert 'arguments=["train"]' in textbook
    (dags / "textbook_gpu_pod.py").write_text(
        textbook.replace('arguments=["train"]', 'arguments=["--help"]')
    )
    done = subprocess.run(
        [sys.executable, "-m", "ml_platform.local.demo", "--dag", "good_textbook_gpu_pod"]
        + ["--dags-folder", str(dags), "--local-dir", str(tmp_path / "local")]
        + ["--mlflow-port", str(free_port()), "--date", "2026-11-20"],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo / "dags")},
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "would run on pool 'gpu'" in output
    assert "usage: trainer" in output
    assert "DAG run " in output and ": success in " in output
