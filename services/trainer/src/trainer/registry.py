"""The registry reads several steps share: which version serves, and what its run logged."""

from __future__ import annotations

import logging
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from ml_dependencies import raise_if_unreachable

log = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"


def champion_version(client: MlflowClient, model_name: str) -> ModelVersion | None:
    """The version behind @champion; None when the model or the alias does not exist."""
    try:
        registered = client.get_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    # Reading the alias map avoids get_model_version_by_alias, which reports a missing
    # alias as INVALID_PARAMETER_VALUE rather than RESOURCE_DOES_NOT_EXIST.
    version = registered.aliases.get(CHAMPION_ALIAS)
    return None if version is None else client.get_model_version(model_name, str(version))


def newest_version(client: MlflowClient, model_name: str) -> ModelVersion | None:
    """The highest version number of a registered model; None when it has none."""
    versions = client.search_model_versions(f"name = '{model_name}'")
    return max(versions, key=lambda v: int(v.version), default=None)


def run_artifact_dict(version: ModelVersion | None, artifact: str) -> dict[str, Any] | None:
    """A JSON artifact of the run a version was logged from; None when it has none."""
    import mlflow.artifacts

    if version is None or not version.run_id:
        return None
    try:
        return mlflow.artifacts.load_dict(f"runs:/{version.run_id}/{artifact}")
    except (MlflowException, OSError) as exc:
        raise_if_unreachable(exc)  # MLflow being down is not "no artifact"
        log.info("run %s has no %s (%s)", version.run_id, artifact, exc)
        return None
