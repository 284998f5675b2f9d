"""The console script in a real subprocess: exit codes, one-line errors, XCom location."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from trainer_helpers import TRAINER_SCRIPT, file_uri


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=env, check=False
    )


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CTX_")}
    return {**env, **extra}


def test_console_script_writes_the_xcom_from_the_env_and_exits_zero(tmp_path: Path):
    xcom = tmp_path / "airflow" / "xcom" / "return.json"
    partition = tmp_path / "daily" / "2026-11-21"

    done = _run(
        [
            str(TRAINER_SCRIPT),
            "generate",
            "--date",
            "2026-11-21",
            "--output-uri",
            str(partition),
            "--rows",
            "200",
        ],
        _env(TRAINER_XCOM_PATH=str(xcom)),
    )

    assert done.returncode == 0, done.stderr
    result = json.loads(xcom.read_text())
    assert result == {
        "uri": f"{file_uri(partition)}/data.parquet",
        "rows": 200,
        "date": "2026-11-21",
        "drift": 0.0,
        "source": "churn-synthetic",
    }
    assert f"generate: {json.dumps(result, sort_keys=True)}" in done.stderr  # the summary line


def test_python_dash_m_fails_bad_data_with_one_line_and_exit_one(tmp_path: Path):
    partition = tmp_path / "daily"
    partition.mkdir()
    (partition / "data.parquet").write_bytes(b"this is not parquet")
    xcom = tmp_path / "return.json"

    done = _run(
        [
            sys.executable,
            "-m",
            "trainer",
            "--xcom-path",
            str(xcom),
            "validate",
            "--input-uri",
            str(partition),
        ],
        _env(),
    )

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"trainer validate: error: {file_uri(partition)}/data.parquet: not a readable Parquet file"
    )
    assert not xcom.exists()


def test_usage_errors_exit_two(tmp_path: Path):
    done = _run([str(TRAINER_SCRIPT), "train", "--data-uri", str(tmp_path)], _env())

    assert done.returncode == 2
    assert "the following arguments are required: --experiment" in done.stderr


def test_an_unwritable_xcom_path_is_a_one_line_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")

    done = _run(
        [
            str(TRAINER_SCRIPT),
            "--xcom-path",
            str(blocker / "return.json"),
            "generate",
            "--date",
            "2026-11-21",
            "--output-uri",
            str(tmp_path / "out"),
            "--rows",
            "50",
        ],
        _env(),
    )

    assert done.returncode == 1
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(f"trainer generate: error: --xcom-path {blocker}/return.json: cannot write")
    )
