"""The e2e tests' gate: one line naming what is missing, a skip under plain pytest and a
failure under `make e2e` (E2E_REQUIRED=1).

The gate's decisions are driven here with PATH pointing at a folder of stand-in executables,
each answering as the real tool does in that situation (exit status and message). Only the
gate is tested this way; the e2e tests themselves never run against stand-ins.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from infra.kind import kind_platform
from tests.e2e import preflight

REPO = kind_platform.REPO_ROOT


def _tool(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def _folder(tmp_path: Path, **scripts: str) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    for name, script in scripts.items():
        _tool(folder, name, script)
    return folder


HEALTHY = {
    "docker": "echo 29.0.0",
    "kind": f"echo {kind_platform.cluster_name()}",
    "kubectl": "exit 0",
    "helm": "exit 0",
    "pulumi": """echo '{"airflow_admin_user": "admin", "airflow_admin_password": "pw"}'""",
}


def _check(folder: Path, **extra: str) -> preflight.Preflight:
    return preflight.check({"PATH": str(folder), **extra})


def test_names_every_missing_tool(tmp_path: Path):
    result = _check(_folder(tmp_path))
    assert result.blocker == (
        "the kind e2e tests need docker, kind, kubectl, helm, pulumi; "
        "not on PATH: docker, kind, kubectl, helm, pulumi"
    )
    assert "\n" not in result.blocker


def test_names_only_the_missing_tool(tmp_path: Path):
    present = {name: script for name, script in HEALTHY.items() if name != "pulumi"}
    result = _check(_folder(tmp_path, **present))
    assert result.blocker is not None
    assert result.blocker.endswith("not on PATH: pulumi")


def test_a_docker_client_without_an_engine(tmp_path: Path):
    scripts = {
        **HEALTHY,
        "docker": "echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock' >&2"
        "; exit 1",
    }
    result = _check(_folder(tmp_path, **scripts))
    assert result.blocker == (
        "docker: no engine answers (docker info: Cannot connect to the Docker daemon at "
        "unix:///var/run/docker.sock)"
    )


def test_the_kind_cluster_not_up(tmp_path: Path):
    scripts = {**HEALTHY, "kind": "echo 'No kind clusters found.' >&2"}
    result = _check(_folder(tmp_path, **scripts))
    assert (
        result.blocker == f"kind cluster {kind_platform.cluster_name()!r} is not up (make kind-up)"
    )


def test_the_stack_not_deployed(tmp_path: Path):
    scripts = {**HEALTHY, "pulumi": "echo \"error: no stack named 'kind' found\" >&2; exit 255"}
    result = _check(_folder(tmp_path, **scripts), PULUMI_CONFIG_PASSPHRASE="x")
    assert result.blocker is not None
    assert result.blocker.startswith("pulumi stack 'kind' is not deployed in file://")
    assert result.blocker.endswith("(make deploy ENV=kind): error: no stack named 'kind' found")


def test_a_stack_without_outputs(tmp_path: Path):
    scripts = {**HEALTHY, "pulumi": "echo '{}'"}
    result = _check(_folder(tmp_path, **scripts), PULUMI_CONFIG_PASSPHRASE="x")
    assert result.blocker is not None and "has no outputs" in result.blocker


def test_nothing_missing_gives_the_stack_outputs(tmp_path: Path):
    result = _check(_folder(tmp_path, **HEALTHY), PULUMI_CONFIG_PASSPHRASE="x")
    assert result.blocker is None
    assert result.outputs == {"airflow_admin_user": "admin", "airflow_admin_password": "pw"}


def test_pulumi_gets_the_kind_backend_and_a_passphrase(tmp_path: Path):
    env_dump = tmp_path / "env.txt"
    # `export -p`: the shell's own listing of its environment (PATH here has no `env`).
    scripts = {**HEALTHY, "pulumi": f"export -p > {env_dump}; echo '{{\"a\": 1}}'"}
    _check(_folder(tmp_path, **scripts))
    exported = re.findall(r"^export (\w+)='?(.*?)'?$", env_dump.read_text(), re.MULTILINE)
    seen = dict(exported)
    assert seen["PULUMI_BACKEND_URL"] == kind_platform.PULUMI_BACKEND_DIR.as_uri()
    assert seen["PULUMI_CONFIG_PASSPHRASE_FILE"] == str(kind_platform.PASSPHRASE_FILE)


def _pytest_e2e(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    environ = {
        key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "E2E_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/e2e", "-q", "-rs", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env={**environ, "PATH": str(empty), **env},
    )


REASON = (
    "the kind e2e tests need docker, kind, kubectl, helm, pulumi; "
    "not on PATH: docker, kind, kubectl, helm, pulumi"
)


def test_plain_pytest_collects_the_e2e_tests_and_skips_them_with_the_reason(tmp_path: Path):
    done = _pytest_e2e(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    assert " skipped" in summary and "passed" not in summary and "error" not in summary, summary
    assert f"tests/e2e/test_e2e_pipeline.py: {REASON}" in done.stdout, done.stdout


def test_make_e2e_fails_instead_of_skipping(tmp_path: Path):
    done = _pytest_e2e(tmp_path, E2E_REQUIRED="1")
    assert done.returncode != 0, done.stdout
    assert f"E2E_REQUIRED=1 but {REASON}" in done.stdout, done.stdout
    assert " skipped" not in done.stdout.strip().splitlines()[-1], done.stdout
