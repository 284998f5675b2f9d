"""The local runtime runs a team image's `python -m <module>` entry point as a local process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml_platform.local.runner import (
    XCOM_ENV,
    ContainerTaskFailed,
    LocalEntrypoint,
    local_entrypoint,
)
from ml_platform.settings import DEFAULT_CONFIG_FILE, PlatformConfig, parse_config

KIND = parse_config(json.loads(DEFAULT_CONFIG_FILE.read_text()))
DAGS = Path(__file__).resolve().parents[2] / "dags"
MODULE = """\
import json, os, sys
import team_helper  # a second file of the image folder: the folder is importable
with open(os.environ["TRAINER_XCOM_PATH"], "w") as out:
    json.dump({"argv": sys.argv[1:], "helper": team_helper.NAME}, out)
"""


def _image(dags: Path, dockerfile: str, team: str = "fraud", name: str = "echo") -> str:
    folder = dags / "teams" / team / "images" / name
    folder.mkdir(parents=True)
    (folder / "Dockerfile").write_text(dockerfile)
    (folder / "echo_trainer.py").write_text(MODULE)
    (folder / "team_helper.py").write_text('NAME = "helper"\n')
    return KIND.images.team_ref(team, name)


def test_the_examples_wine_trainer_runs_its_module() -> None:
    entry = local_entrypoint(KIND.images.team_ref("examples", "wine-trainer"), KIND, DAGS)
    assert entry.command == [sys.executable, "-m", "wine_trainer"]
    assert entry.pythonpath == [str(DAGS / "teams/examples/images/wine-trainer")]


def test_the_module_runs_with_its_folder_importable(tmp_path: Path) -> None:
    # A continued line, as Docker reads it.
    dockerfile = "ARG TRAINER_BASE\nFROM ${TRAINER_BASE}\n"
    dockerfile += 'ENTRYPOINT ["python", "-m", \\\n  "echo_trainer"]\n'
    ref = _image(tmp_path / "dags", dockerfile)
    entry = local_entrypoint(ref, KIND, tmp_path / "dags")
    xcom = tmp_path / "return.json"
    env = entry.environment({**os.environ, XCOM_ENV: str(xcom), "PYTHONPATH": "/elsewhere"})
    assert env["PYTHONPATH"].split(os.pathsep) == [*entry.pythonpath, "/elsewhere"]
    subprocess.run(entry.command + ["train", "--max-depth", "3"], env=env, check=True, timeout=60)
    assert json.loads(xcom.read_text()) == {
        "argv": ["train", "--max-depth", "3"],
        "helper": "helper",
    }


def test_platform_images_stay_console_scripts() -> None:
    entry = local_entrypoint(KIND.images.ref("trainer"), KIND, DAGS)
    assert entry == LocalEntrypoint([str(Path(sys.executable).with_name("trainer"))])


BASE = "ARG TRAINER_BASE\nFROM ${TRAINER_BASE}\n"


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        (BASE, ":2: image 'echo': the final stage sets no ENTRYPOINT"),
        (BASE + "ENTRYPOINT python -m echo_trainer\n", ":3: image 'echo': ENTRYPOINT python"),
        (BASE + 'ENTRYPOINT ["python", "echo_trainer.py"]\n', 'is not ["python", "-m", '),
        (BASE + 'ENTRYPOINT ["python", "-m", "absent"]\n', "the image folder has no absent.py"),
        (
            'FROM python:3.11\nENTRYPOINT ["python", "-m", "echo_trainer"]\n',
            "no `ARG TRAINER_BASE`",
        ),
    ],
)
def test_an_image_check_dags_refuses_does_not_run_either(
    tmp_path: Path, dockerfile: str, message: str
) -> None:
    """The same rule (MLP404) and reason as `make check-dags`, on one line."""
    ref = _image(tmp_path / "dags", dockerfile)
    with pytest.raises(ContainerTaskFailed) as raised:
        local_entrypoint(ref, KIND, tmp_path / "dags")
    assert message in str(raised.value)
    assert str(raised.value).startswith(str(tmp_path / "dags/teams/fraud/images/echo/Dockerfile:"))
    assert "\n" not in str(raised.value)


def test_a_missing_image_folder_is_one_clear_line(tmp_path: Path) -> None:
    ref = KIND.images.team_ref("fraud", "gone")
    with pytest.raises(ContainerTaskFailed) as raised:
        local_entrypoint(ref, KIND, tmp_path)
    assert str(raised.value) == (
        f"image {ref}: no team image folder for it under {tmp_path}/teams/ "
        "(expected teams/<team>/images/<name>/Dockerfile)"
    )


def test_an_unknown_image_is_refused(platform: PlatformConfig) -> None:
    with pytest.raises(ContainerTaskFailed, match="is not a platform image"):
        local_entrypoint("python:3.11", platform, DAGS)
