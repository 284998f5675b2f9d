"""The kind path's shell scripts and make verbs: valid bash, strict mode, one-line failures.

A missing tool is simulated with PATH pointing at a folder that links only the basic
utilities the scripts use before they check their tools.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from infra.kind import kind_platform

REPO = kind_platform.REPO_ROOT
SCRIPTS = sorted(
    [*REPO.glob("infra/kind/*.sh"), REPO / "infra/deploy.sh", *REPO.glob("tests/e2e/*.sh")]
)
LIBRARY = REPO / "infra/kind/lib.sh"  # sourced, not run
BASICS = ("dirname", "find", "sed", "sort", "xargs", "echo", "date", "cat", "grep", "mkdir", "cp")
VERBS = ("kind-up", "images", "deploy", "e2e", "kind-down")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_script_parses_and_runs_strict(script: Path):
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    text = script.read_text()
    if script == LIBRARY:
        assert not os.access(script, os.X_OK), "lib.sh is sourced, not run"
        return
    assert text.startswith("#!/usr/bin/env bash\n"), script
    assert "\nset -euo pipefail\n" in text, script
    assert os.access(script, os.X_OK), f"{script} is not executable"


@pytest.fixture
def basics_only(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH has the basic utilities and none of the kind path's tools."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in BASICS:
        found = shutil.which(name)
        assert found, name
        (folder / name).symlink_to(found)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    return {**environ, "PATH": str(folder)}


def _run(args: list[str], environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash
    return subprocess.run(
        [bash, *args], capture_output=True, text=True, timeout=120, cwd=REPO, env=environ
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["infra/kind/up.sh"], "kind-up: not installed (not on PATH): docker kind"),
        (["infra/kind/images.sh"], "images: not installed (not on PATH): docker kind"),
        (["infra/kind/down.sh"], "kind-down: not installed (not on PATH): docker kind"),
        (["infra/deploy.sh", "kind"], "deploy: not installed (not on PATH): pulumi docker kind"),
        (
            ["tests/e2e/collect-logs.sh", "out"],
            "collect-logs: not installed (not on PATH): kubectl",
        ),
    ],
)
def test_a_missing_tool_fails_with_one_line_naming_it(
    basics_only: dict[str, str], tmp_path: Path, args: list[str], line: str
):
    if args[-1] == "out":
        args = [*args[:-1], str(tmp_path / "logs")]
    done = _run(args, basics_only)
    assert done.returncode == 1, done.stdout
    assert done.stderr.splitlines() == [f"{line} (see docs/kind.md)"], done.stderr


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_cloud_stacks_are_refused_without_an_explicit_backend(
    basics_only: dict[str, str], stack: str
):
    done = _run(["infra/deploy.sh", stack], basics_only)
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith(
        f"deploy: refusing to deploy '{stack}' without an explicit state backend"
    )
    assert "set PULUMI_BACKEND_URL" in line and "PULUMI_CONFIG_PASSPHRASE" in line, line


def test_a_cloud_stack_with_a_backend_goes_on_to_pulumi(basics_only: dict[str, str]):
    environ = {**basics_only, "PULUMI_BACKEND_URL": "s3://state-bucket"}
    done = _run(["infra/deploy.sh", "dev"], environ)
    assert done.stderr.splitlines() == [
        "deploy: not installed (not on PATH): pulumi (see docs/kind.md)"
    ]


def test_deploy_names_the_stacks_when_none_or_an_unknown_one_is_given(
    basics_only: dict[str, str],
):
    stacks = " ".join(sorted(p.name.split(".")[1] for p in REPO.glob("infra/Pulumi.*.yaml")))
    done = _run(["infra/deploy.sh"], basics_only)
    assert done.stderr.splitlines() == [f"deploy: which stack? make deploy ENV=<one of: {stacks}>"]
    done = _run(["infra/deploy.sh", "staging"], basics_only)
    assert done.stderr.splitlines() == [
        f"deploy: no stack 'staging' (no infra/Pulumi.staging.yaml); stacks: {stacks}"
    ]


def test_the_verbs_are_make_targets_that_run_the_scripts():
    done = subprocess.run(
        ["make", "-n", *VERBS, "ENV=kind"], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for expected in (
        "infra/kind/up.sh",
        "infra/kind/images.sh",
        'infra/deploy.sh "kind"',
        "infra/kind/down.sh",
    ):
        assert expected in lines, (expected, lines)
    (e2e,) = [line for line in lines if "pytest" in line]
    assert e2e.startswith("E2E_TARGET=kind E2E_REQUIRED=1 "), e2e
    assert " tests/e2e -m e2e " in e2e, e2e
    makefile = (REPO / "Makefile").read_text()
    for verb in VERBS:
        assert f"\n{verb}: setup ## " in makefile, verb


def test_images_print_mode_needs_no_docker(basics_only: dict[str, str]):
    done = _run(["infra/kind/images.sh", "--print"], basics_only)
    assert done.returncode == 0, done.stderr
    assert "docker build" in done.stdout and "kind load docker-image" in done.stdout
