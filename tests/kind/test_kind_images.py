"""`make images` builds and loads exactly the images the kind platform document names.

The script's own commands are checked (`infra/kind/images.sh --print` prints them instead of
running them), against the references computed here straight from
dags/ml_platform/platform.kind.json, what the DAGs' pods run.
"""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from infra.kind import kind_platform
from ml_platform.settings import DEFAULT_CONFIG_FILE

REPO = kind_platform.REPO_ROOT


@pytest.fixture(scope="module")
def commands() -> list[list[str]]:
    done = subprocess.run(
        ["bash", str(REPO / "infra/kind/images.sh"), "--print"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    return [
        shlex.split(line)
        for line in done.stdout.splitlines()
        if line.startswith(("docker ", "kind "))
    ]


def _document_refs() -> dict[str, str]:
    images = json.loads(DEFAULT_CONFIG_FILE.read_text())["images"]
    return {
        image: f"{images['registry']}/{name}:{images['tag']}"
        for image, name in images["names"].items()
    }


def _option(command: list[str], flag: str) -> list[str]:
    return [command[i + 1] for i, word in enumerate(command) if word == flag]


def test_builds_every_image_of_the_platform_document_under_its_reference(commands):
    builds = [c for c in commands if c[:2] == ["docker", "build"]]
    built = {c[-1]: _option(c, "--tag") for c in builds}
    expected = {f"services/{image}": [ref] for image, ref in _document_refs().items()}
    assert built == expected
    for context in built:
        assert (REPO / context / "Dockerfile").is_file(), context


def test_every_image_is_built_for_cpu(commands):
    """kind has no GPU: the trainer's CUDA base is replaced by the CPU image's defaults."""
    deployer_defaults = kind_platform.dockerfile_arg_defaults(REPO / "services/deployer/Dockerfile")
    wanted = sorted(
        f"{name}={deployer_defaults[name]}" for name in ("BASE_IMAGE", "TORCH_INDEX_URL")
    )
    for command in (c for c in commands if c[:2] == ["docker", "build"]):
        assert sorted(_option(command, "--build-arg")) == wanted, command
    trainer = kind_platform.dockerfile_arg_defaults(REPO / "services/trainer/Dockerfile")
    # The args reach the trainer's Dockerfile, whose default base is not the CPU one.
    assert {"BASE_IMAGE", "TORCH_INDEX_URL"} <= set(trainer)
    assert trainer["BASE_IMAGE"] != deployer_defaults["BASE_IMAGE"]


def test_loads_each_image_into_the_pool_nodes_of_the_stacks_cluster(commands):
    loads = [c for c in commands if c[:3] == ["kind", "load", "docker-image"]]
    assert sorted(c[3] for c in loads) == sorted(_document_refs().values())
    for command in loads:
        assert _option(command, "--name") == [kind_platform.cluster_name()]
        (nodes,) = _option(command, "--nodes")
        assert sorted(nodes.split(",")) == sorted(kind_platform.pool_nodes())
