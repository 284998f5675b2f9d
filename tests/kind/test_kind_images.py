"""`make images` builds and loads exactly the images the kind platform document names, and
every team image under dags/teams/*/images/.

The script's own commands are checked (`infra/kind/images.sh --print` prints them instead of
running them), against the references computed here straight from
dags/ml_platform/platform.kind.json, what the DAGs' pods run.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tomllib

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


def _team_refs() -> dict[str, str]:
    """Build context -> reference of each team image: team-<team>-<name> in the registry."""
    images = json.loads(DEFAULT_CONFIG_FILE.read_text())["images"]
    return {
        str(dockerfile.parent.relative_to(REPO)): (
            f"{images['registry']}/team-{dockerfile.parts[-4]}-{dockerfile.parts[-2]}"
            f":{images['tag']}"
        )
        for dockerfile in sorted(REPO.glob("dags/teams/*/images/*/Dockerfile"))
    }


def _option(command: list[str], flag: str) -> list[str]:
    return [command[i + 1] for i, word in enumerate(command) if word == flag]


def _builds(commands: list[list[str]]) -> list[list[str]]:
    return [c for c in commands if c[:2] == ["docker", "build"]]


def test_builds_every_image_of_the_platform_document_under_its_reference(commands):
    built = {c[-1]: _option(c, "--tag") for c in _builds(commands)}
    expected = {f"services/{image}": [ref] for image, ref in _document_refs().items()}
    expected.update({context: [ref] for context, ref in _team_refs().items()})
    assert built == expected
    for context in built:
        assert (REPO / context / "Dockerfile").is_file(), context


def test_the_example_team_image_is_built():
    assert "dags/teams/examples/images/wine-trainer" in _team_refs()


def test_team_images_are_built_from_the_trainer_after_it(commands):
    """A team image is FROM ${TRAINER_BASE}: the trainer image that was just built."""
    contexts = [c[-1] for c in _builds(commands)]
    trainer_ref = _document_refs()["trainer"]
    for context in _team_refs():
        command = _builds(commands)[contexts.index(context)]
        assert _option(command, "--build-arg") == [f"TRAINER_BASE={trainer_ref}"], command
        assert contexts.index(context) > contexts.index("services/trainer")
        dockerfile = (REPO / context / "Dockerfile").read_text().splitlines()
        assert "ARG TRAINER_BASE" in dockerfile and "FROM ${TRAINER_BASE}" in dockerfile


def test_every_platform_image_is_built_for_cpu(commands):
    """kind has no GPU: the trainer's CUDA base is replaced by the CPU image's defaults."""
    deployer_defaults = kind_platform.dockerfile_arg_defaults(REPO / "services/deployer/Dockerfile")
    wanted = sorted(
        f"{name}={deployer_defaults[name]}" for name in ("BASE_IMAGE", "TORCH_INDEX_URL")
    )
    for command in _builds(commands):
        if command[-1].startswith("services/"):
            assert sorted(_option(command, "--build-arg")) == wanted, command
    trainer = kind_platform.dockerfile_arg_defaults(REPO / "services/trainer/Dockerfile")
    # The args reach the trainer's Dockerfile, whose default base is not the CPU one.
    assert {"BASE_IMAGE", "TORCH_INDEX_URL"} <= set(trainer)
    assert trainer["BASE_IMAGE"] != deployer_defaults["BASE_IMAGE"]


def test_loads_each_image_into_the_pool_nodes_of_the_stacks_cluster(commands):
    loads = [c for c in commands if c[:3] == ["kind", "load", "docker-image"]]
    expected = [*_document_refs().values(), *_team_refs().values()]
    assert sorted(c[3] for c in loads) == sorted(expected)
    for command in loads:
        assert _option(command, "--name") == [kind_platform.cluster_name()]
        (nodes,) = _option(command, "--nodes")
        assert sorted(nodes.split(",")) == sorted(kind_platform.pool_nodes())


def test_each_dockerfile_gets_the_named_contexts_it_copies_from(commands):
    """`COPY --from=<name>` of a name that is no stage of the file needs --build-context."""
    for command in _builds(commands):
        context = command[-1]
        dockerfile = (REPO / context / "Dockerfile").read_text()
        stages = set(re.findall(r"(?im)^\s*FROM\s+\S+\s+AS\s+(\S+)", dockerfile))
        wanted = set(re.findall(r"(?im)^\s*COPY\s+--from=(\S+)", dockerfile)) - stages
        given = dict(value.split("=", 1) for value in _option(command, "--build-context"))
        assert set(given) == wanted, context
        for name, path in given.items():
            assert (REPO / path / "pyproject.toml").is_file(), (context, name, path)


def _own_packages() -> dict[str, str]:
    """Distribution name -> folder of each of the repository's own packages: the Makefile's
    LOCAL_PACKAGES, what `make setup` installs editable."""
    makefile = (REPO / "Makefile").read_text().splitlines()
    (line,) = [text for text in makefile if text.startswith("LOCAL_PACKAGES")]
    folders = line.split(":=", 1)[1].split()
    return {
        tomllib.loads((REPO / folder / "pyproject.toml").read_text())["project"]["name"]: folder
        for folder in folders
    }


def test_each_image_gets_the_repositorys_own_packages_it_depends_on(commands):
    """An image's dependency on one of our packages (ml-platform-*) resolves to the copy given
    as a named context (none is on a registry), and `make setup` installs it too."""
    own = _own_packages()
    checked = 0
    for command in _builds(commands):
        pyproject = REPO / command[-1] / "pyproject.toml"
        if not pyproject.is_file():  # a team image installs nothing of ours itself
            continue
        requires = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
        names = {re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0] for spec in requires}
        ours = {name for name in names if name.startswith("ml-platform-")}
        assert ours <= set(own), (command[-1], ours - set(own))
        given = {value.split("=", 1)[1] for value in _option(command, "--build-context")}
        assert given == {own[name] for name in ours}, command[-1]
        checked += bool(ours)
    assert checked == 2  # the trainer and the deployer share ml-platform-dependencies
