"""Where results go: the JSON file KubernetesPodOperator reads back as the task's XCom."""

from __future__ import annotations

import json
import os
from pathlib import Path

from trainer.errors import TrainerError

XCOM_ENV = "TRAINER_XCOM_PATH"
DEFAULT_XCOM_PATH = "/airflow/xcom/return.json"  # the path KubernetesPodOperator reads


def xcom_path(flag_value: str | None) -> Path:
    """--xcom-path, else $TRAINER_XCOM_PATH, else the KubernetesPodOperator path."""
    return Path(flag_value or os.environ.get(XCOM_ENV) or DEFAULT_XCOM_PATH)


def write_xcom(result: dict, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, sort_keys=True) + "\n")
    except OSError as exc:
        raise TrainerError(f"--xcom-path {path}: cannot write ({exc.strerror or exc})") from exc
