"""The CI workflows: valid YAML, the jobs and steps the kind path needs, in order."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.kind import kind_platform

REPO = kind_platform.REPO_ROOT
WORKFLOWS = REPO / ".github" / "workflows"


def _load(name: str) -> dict:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True; GitHub reads it as "on".
    document["on"] = document.pop(True)
    return document


def _steps(document: dict, job: str) -> list[dict]:
    return document["jobs"][job]["steps"]


def _runs(steps: list[dict]) -> list[str]:
    return [step["run"].strip() for step in steps if "run" in step]


@pytest.mark.parametrize("name", ["test.yml", "e2e-kind.yml"])
def test_every_action_is_pinned_to_a_version(name: str):
    for job in _load(name)["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+(\.\d+){0,2}", step["uses"]), step


def test_test_workflow_runs_make_test_on_pushes_and_pull_requests():
    document = _load("test.yml")
    assert {"push", "pull_request"} <= set(document["on"])
    steps = _steps(document, "test")
    assert steps[0]["uses"].startswith("actions/checkout@")
    python = [s for s in steps if s.get("uses", "").startswith("actions/setup-python@")]
    assert python and python[0]["with"]["python-version"] == "3.11"
    assert _runs(steps)[-1] == "make test"


def test_ci_entry_point_still_runs_the_readme_test_command():
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_e2e_workflow_brings_the_stack_up_then_runs_the_tests_in_order():
    steps = _steps(_load("e2e-kind.yml"), "e2e")
    runs = _runs(steps)
    verbs = ["make setup", "make kind-up", "make images", "make deploy ENV=kind", "make e2e"]
    positions = [runs.index(verb) for verb in verbs]
    assert positions == sorted(positions), runs
    uses = [step.get("uses", "") for step in steps]
    kind = steps[next(i for i, u in enumerate(uses) if u.startswith("helm/kind-action@"))]
    assert kind["with"]["install_only"] is True  # the cluster is make kind-up's
    assert any(u.startswith("azure/setup-helm@") for u in uses)
    pulumi = steps[next(i for i, u in enumerate(uses) if u.startswith("pulumi/actions@"))]
    assert "command" not in pulumi["with"], "the action only installs the CLI"
    # Every tool is installed before the first verb runs.
    first_verb = next(i for i, s in enumerate(steps) if s.get("run", "").strip() == verbs[0])
    installers = ("helm/kind-action@", "azure/setup-helm@", "pulumi/actions@")
    assert all(i < first_verb for i, u in enumerate(uses) if u.startswith(installers)), (
        "a tool is installed after the verbs start"
    )


def _run_step(step: dict, file_variable: str, tmp_path: Path) -> str:
    """Run a step's shell the way the runner does; what it wrote to $GITHUB_OUTPUT/ENV."""
    written = tmp_path / file_variable
    written.touch()
    done = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PATH": os.environ["PATH"], file_variable: str(written)},
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return written.read_text()


def test_the_pulumi_cli_is_the_version_the_sdk_is_pinned_to(tmp_path: Path):
    steps = _steps(_load("e2e-kind.yml"), "e2e")
    (versions,) = [s for s in steps if s.get("id") == "versions"]
    pulumi = next(s for s in steps if s.get("uses", "").startswith("pulumi/actions@"))
    assert pulumi["with"]["pulumi-version"] == "${{ steps.versions.outputs.pulumi }}"
    output = _run_step(versions, "GITHUB_OUTPUT", tmp_path)
    pinned = re.search(r"^pulumi==(\S+)$", (REPO / "requirements.lock").read_text(), re.M)
    assert pinned is not None
    assert output.strip() == f"pulumi={pinned[1]}"


@pytest.mark.parametrize("name", ["test.yml", "e2e-kind.yml"])
def test_torch_comes_from_the_index_the_cpu_images_use(name: str, tmp_path: Path):
    steps = _steps(_load(name), next(iter(_load(name)["jobs"])))
    (step,) = [s for s in steps if "PIP_EXTRA_INDEX_URL" in s.get("run", "")]
    output = _run_step(step, "GITHUB_ENV", tmp_path)
    index = kind_platform.cpu_build_args()["TORCH_INDEX_URL"]
    assert output.strip() == f"PIP_EXTRA_INDEX_URL={index}"


def test_e2e_failure_uploads_the_collected_logs():
    steps = _steps(_load("e2e-kind.yml"), "e2e")
    (collect,) = [s for s in steps if "collect-logs.sh" in s.get("run", "")]
    (upload,) = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert collect["if"] == "failure()" and upload["if"] == "failure()"
    assert steps.index(collect) < steps.index(upload)
    script, folder = collect["run"].split()
    assert (REPO / script).is_file()
    assert upload["with"]["path"].rstrip("/") == folder
