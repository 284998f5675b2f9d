"""Which model spec a subcommand works under: the flag, the DAG's env, MLflow, or the data.

In order: `--spec FILE` (a `.model.yaml`, or its JSON form), `$ML_MODEL_SPEC` (the JSON the
DAG puts in every pod), `--model-name NAME` (the spec logged with the registered model's
@champion, else its newest version), and for train/evaluate the spec preprocess wrote beside
the prepared data. The first that is given wins; a bad one is an error, never skipped.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ml_contract import SPEC_ENV, ModelSpec, SpecError, load_spec, spec_from_dict, spec_from_json
from trainer import storage
from trainer.errors import TrainerError

log = logging.getLogger(__name__)

SPEC_ARTIFACT = "model_spec.json"  # logged with every model the platform trains
PREPARED_SPEC_FILE = "spec.json"  # written by preprocess beside the splits


def resolve_spec(
    spec_flag: str | None, model_name: str | None = None, data_uri: str | None = None
) -> ModelSpec:
    try:
        if spec_flag:
            return _from_file(spec_flag)
        env = os.environ.get(SPEC_ENV, "").strip()
        if env:
            return spec_from_json(env, SPEC_ENV)
        if model_name:
            found = spec_of_registered_model(model_name)
            if found is not None:
                return found
        if data_uri:
            uri = storage.join(storage.normalize(data_uri), PREPARED_SPEC_FILE)
            if storage.exists(uri):
                return spec_from_dict(storage.read_json(uri), uri)
    except SpecError as exc:
        raise TrainerError(str(exc)) from None
    tried = [f"no spec logged with model {model_name!r}"] if model_name else []
    tried += [f"no {PREPARED_SPEC_FILE} in {data_uri}"] if data_uri else []
    detail = f" ({'; '.join(tried)})" if tried else ""
    raise TrainerError(f"no model spec: pass --spec FILE or set {SPEC_ENV}{detail}")


def _from_file(value: str) -> ModelSpec:
    path = Path(value.removeprefix("file://"))
    if path.suffix == ".json":
        try:
            return spec_from_json(path.read_text(), str(path))
        except OSError as exc:
            raise TrainerError(f"--spec {value}: cannot read ({exc.strerror or exc})") from None
    return load_spec(path)


def spec_of_registered_model(model_name: str) -> ModelSpec | None:
    """The spec logged with @champion (else the newest version); None if none is registered."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from trainer.registry import champion_version, newest_version, run_artifact_dict

    client = MlflowClient()
    try:
        version = champion_version(client, model_name) or newest_version(client, model_name)
    except MlflowException as exc:
        raise TrainerError(f"--model-name {model_name}: MLflow answered {exc.error_code}") from None
    document = run_artifact_dict(version, SPEC_ARTIFACT)
    if document is None:
        return None
    log.info(
        "model spec of %s from version %s (run %s)", model_name, version.version, version.run_id
    )
    return spec_from_dict(document, f"{model_name} version {version.version}/{SPEC_ARTIFACT}")
