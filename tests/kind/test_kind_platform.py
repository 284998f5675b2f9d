"""infra/kind/kind_platform.py: the kind path's names come from their single sources."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.kind import kind_platform

REPO = kind_platform.REPO_ROOT


def test_services_are_the_programs_in_cluster_urls():
    from ml_infra.endpoints import airflow_url, mlflow_url, storage_endpoint

    config = kind_platform.stack_config()
    services = kind_platform.services()
    for name, url in (
        ("airflow", airflow_url(config)),
        ("mlflow", mlflow_url(config)),
        ("storage", storage_endpoint(config)),
    ):
        service = services[name]
        assert url == (
            f"http://{service.name}.{service.namespace}.svc.cluster.local:{service.port}"
        ), name
    assert services["mlflow"].port == config.mlflow.port
    assert services["storage"].namespace == config.namespaces["storage"]


def test_the_storage_endpoint_is_the_platform_documents():
    storage = kind_platform.services()["storage"]
    document = json.loads((REPO / "dags/ml_platform/platform.kind.json").read_text())
    assert document["storage"]["endpoint_url"] == (
        f"http://{storage.name}.{storage.namespace}.svc.cluster.local:{storage.port}"
    )


def test_a_context_that_is_not_kinds_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(kind_platform, "kube_context", lambda: "gke_project_zone_cluster")
    with pytest.raises(ValueError, match="is not a kind context"):
        kind_platform.cluster_name()


def test_pulumi_env_uses_the_callers_passphrase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(kind_platform, "PULUMI_BACKEND_DIR", tmp_path / "pulumi")
    monkeypatch.setattr(kind_platform, "PASSPHRASE_FILE", tmp_path / "passphrase")
    env = kind_platform.pulumi_env({"PULUMI_CONFIG_PASSPHRASE": "mine"}, create=True)
    assert env == {
        "PULUMI_BACKEND_URL": (tmp_path / "pulumi").as_uri(),
        "PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER": "true",
    }
    assert not (tmp_path / "passphrase").exists()


def test_pulumi_env_generates_a_private_passphrase_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(kind_platform, "PULUMI_BACKEND_DIR", tmp_path / "state" / "pulumi")
    monkeypatch.setattr(kind_platform, "PASSPHRASE_FILE", tmp_path / "state" / "passphrase")
    env = kind_platform.pulumi_env({}, create=True)
    passphrase = tmp_path / "state" / "passphrase"
    assert env["PULUMI_CONFIG_PASSPHRASE_FILE"] == str(passphrase)
    assert (tmp_path / "state" / "pulumi").is_dir()
    first = passphrase.read_text()
    assert len(first.strip()) >= 32
    assert stat.S_IMODE(passphrase.stat().st_mode) == 0o600
    kind_platform.pulumi_env({}, create=True)
    assert passphrase.read_text() == first
    # Without `create` nothing is written (the e2e gate only reads).
    monkeypatch.setattr(kind_platform, "PASSPHRASE_FILE", tmp_path / "other")
    assert kind_platform.pulumi_env({})["PULUMI_CONFIG_PASSPHRASE_FILE"] == str(tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_the_shell_facts_parse_in_bash():
    done = subprocess.run(
        [
            "bash",
            "-c",
            f'eval "$("{REPO}/.venv/bin/python" infra/kind/kind_platform.py shell)"'
            ' && echo "$KIND_CLUSTER_NAME|$KIND_CONTEXT|$KIND_POOL_NODES|$KIND_CHECKOUT_PATH"',
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env={**os.environ},
    )
    assert done.returncode == 0, done.stderr
    name, context, nodes, path = done.stdout.strip().split("|")
    stack = yaml.safe_load((REPO / "infra/Pulumi.kind.yaml").read_text())["config"]
    assert context == stack["ml-platform:kind"]["context"] == f"kind-{name}"
    listed = sorted(n for pool in stack["ml-platform:pools"] for n in pool["nodes"])
    assert sorted(nodes.split()) == listed
    assert path == stack["ml-platform:airflow"]["dags"]["node_path"]


@pytest.fixture
def broken_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """infra/Pulumi.kind.yaml with the GPU pool's node list removed."""
    stack = yaml.safe_load((REPO / "infra/Pulumi.kind.yaml").read_text())
    del stack["config"]["ml-platform:pools"][1]["nodes"]
    broken = tmp_path / "Pulumi.kind.yaml"
    broken.write_text(yaml.safe_dump(stack))
    monkeypatch.setattr(kind_platform, "stack_file", lambda stack="kind": broken)
    kind_platform.stack_config.cache_clear()
    yield
    kind_platform.stack_config.cache_clear()


def test_a_broken_stack_file_fails_the_scripts_with_its_key(
    broken_stack: None, capsys: pytest.CaptureFixture[str]
):
    assert kind_platform.main(["shell"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        captured.err == "kind_platform shell: ml-platform:pools[1].nodes: required key is missing\n"
    )
