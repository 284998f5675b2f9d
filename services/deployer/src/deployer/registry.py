"""The MLflow model registry side of a deploy: versions, aliases and the tags that record it.

Aliases are read from the registered model (`aliases` maps alias → version) rather than with
get_model_version_by_alias: MLflow answers a missing alias with INVALID_PARAMETER_VALUE, the
same code as a malformed request, so the error code cannot tell "no champion yet" apart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.rest_utils import http_request

from deployer.errors import StepFailed, one_line

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION_TAG = "previous_champion"
# Set on every promotion, and the champion alias moves only with one: a version without it
# was never champion, so no version's previous_champion names it.
DEPLOYED_AT_TAG = "deployed_at"
# Written on a version whose rollout failed (deploy, or rollback to it), cleared when it is
# next promoted: the registry shows which versions failed, at which step and why.
FAILED_STEP_TAG = "failed_step"
FAILED_TAGS = (FAILED_STEP_TAG, "failed_command", "failed_reason", "failed_at")
REGISTRATION_TIMEOUT_S = 300
# The team that owns a registered model: set when a team's deploy step first registers it;
# another team's deploy step is refused (DEPLOYER_TEAM, set by the platform's training DAG).
TEAM_TAG = "ml-platform.team"
# MLflow's basic-auth app: a direct grant to one login (needs MANAGE on the resource).
GRANT_USER_PERMISSION = "/api/3.0/mlflow/users/permissions/grant"


def _response_line(response: Any) -> str:
    try:
        message = response.json().get("message") or response.text
    except ValueError:
        message = response.text
    return f"HTTP {response.status_code}: {' '.join(str(message).split())[:300]}"


def _missing(exc: MlflowException) -> bool:
    return exc.error_code == "RESOURCE_DOES_NOT_EXIST"


def _quoted(value: str) -> str:
    # search_model_versions takes SQL-like filters: single quotes inside a value are doubled.
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class RunModel:
    """The model a run logged, as far as a deploy needs to know it before registering."""

    run_id: str
    artifact_path: str
    model_id: str | None
    metrics: dict[str, float]
    mlmodel: Model
    experiment_id: str | None = None

    @property
    def uri(self) -> str:
        return f"runs:/{self.run_id}/{self.artifact_path}"

    def is_source_of(self, version: ModelVersion) -> bool:
        """Whether `version` (already known to come from this run) holds this model."""
        if self.model_id is None:  # a model logged before MLflow 3 had logged-model ids
            return True
        return (
            version.source in (f"models:/{self.model_id}", self.uri)
            or getattr(version, "model_id", None) == self.model_id
        )


class Registry:
    def __init__(self, client: MlflowClient | None = None) -> None:
        self.client = client or MlflowClient()

    def run_model(self, run_id: str, artifact_path: str) -> RunModel:
        """The run's model; StepFailed("run") / ("model") when either is not there."""
        try:
            run = self.client.get_run(run_id)
        except MlflowException as exc:
            why = f"run {run_id} not found" if _missing(exc) else one_line(exc)
            raise StepFailed("run", why) from None
        try:
            mlmodel = Model.load(f"runs:/{run_id}/{artifact_path}")
        except MlflowException as exc:
            if _missing(exc):
                why = f"run {run_id} has no model at artifact path {artifact_path!r}"
                raise StepFailed("model", why) from None
            raise StepFailed("model", one_line(exc)) from None
        return RunModel(
            run_id,
            artifact_path,
            mlmodel.model_id,
            dict(run.data.metrics),
            mlmodel,
            run.info.experiment_id,
        )

    def check_owner(self, name: str, team: str) -> bool:
        """Raise StepFailed("authority") unless `team` owns registered model `name`; False
        when the model does not exist yet (the team's first deploy creates it as its own)."""
        try:
            model = self.client.get_registered_model(name)
        except MlflowException as exc:
            if _missing(exc):
                return False
            raise StepFailed("authority", f"cannot read {name!r}: {one_line(exc)}") from None
        owner = (model.tags or {}).get(TEAM_TAG)
        if owner == team:
            return True
        if owner is None:
            why = (
                f"registered model {name!r} has no {TEAM_TAG} tag, so no team's deploy step may "
                f"change it; a platform admin sets the tag to its owning team"
            )
        else:
            why = (
                f"registered model {name!r} belongs to team {owner!r}; the deploy step of team "
                f"{team!r} deploys only its own models"
            )
        raise StepFailed("authority", why)

    def create_owned(self, name: str, team: str) -> None:
        """Create registered model `name` tagged as `team`'s (before its first version)."""
        try:
            self.client.create_registered_model(name, tags={TEAM_TAG: team})
        except MlflowException as exc:
            raise StepFailed("register", f"cannot create {name!r}: {one_line(exc)}") from None

    def grant_read(self, user: str, name: str, run_model: RunModel) -> None:
        """Let MLflow login `user` (the team's model servers') read registered model `name`
        and the experiment holding its artifacts, which it loads through MLflow's proxy.
        Needs MANAGE on both, which the team's login has on what it created."""
        grants = [("registered_model", name), ("experiment", run_model.experiment_id)]
        for resource_type, resource_id in grants:
            if resource_id is None:
                continue
            response = http_request(
                get_default_host_creds(self.client.tracking_uri),
                GRANT_USER_PERMISSION,
                "POST",
                json={
                    "username": user,
                    "resource_type": resource_type,
                    "resource_id": str(resource_id),
                    "permission": "READ",
                },
            )
            if response.status_code == 200 or "RESOURCE_ALREADY_EXISTS" in response.text:
                continue
            why = f"cannot let {user!r} read {resource_type} {resource_id!r}: "
            raise StepFailed("authority", why + _response_line(response))

    def find_or_register(self, name: str, run_model: RunModel) -> tuple[ModelVersion, bool]:
        """The version registered from this run's model, created only when there is none."""
        try:
            existing = self.client.search_model_versions(
                f"name = {_quoted(name)} and run_id = {_quoted(run_model.run_id)}"
            )
        except MlflowException as exc:
            raise StepFailed(
                "register", f"cannot search versions of {name!r}: {one_line(exc)}"
            ) from None
        # A run may log several models: only a version of this very model counts.
        same_model = [version for version in existing if run_model.is_source_of(version)]
        if same_model:
            version = min(same_model, key=lambda v: int(v.version))
            log.info(
                "run %s is already %s v%s: reusing it", run_model.run_id, name, version.version
            )
            return version, False
        import mlflow

        try:
            version = mlflow.register_model(
                run_model.uri, name, await_registration_for=REGISTRATION_TIMEOUT_S
            )
        except MlflowException as exc:
            raise StepFailed(
                "register", f"cannot register {run_model.uri}: {one_line(exc)}"
            ) from None
        if version.status != "READY":
            why = f"{name} v{version.version} is {version.status}: {version.status_message}"
            raise StepFailed("register", why)
        log.info("registered %s as %s v%s", run_model.uri, name, version.version)
        return version, True

    def aliases(self, name: str, step: str, missing_ok: bool = False) -> dict[str, str]:
        """Alias → version; with `missing_ok`, {} for a model not registered yet."""
        try:
            return dict(self.client.get_registered_model(name).aliases)
        except MlflowException as exc:
            if missing_ok and _missing(exc):
                return {}
            why = f"registered model {name!r} not found" if _missing(exc) else one_line(exc)
            raise StepFailed(step, why) from None

    def unlink_from_history(self, name: str, version: ModelVersion, newest: str) -> None:
        """Take `version` out of the rollback history that runs back from `newest` (each
        version's previous_champion tag), joining its neighbours: an older version deployed
        again then appears once, as the newest, and a rollback never comes back round to it.
        `version`'s tags are read as given; a version never promoted is in no history, and
        the history (a registry read per version) is not walked for it."""
        if DEPLOYED_AT_TAG not in (version.tags or {}):
            return
        skipped = version.tags.get(PREVIOUS_CHAMPION_TAG)
        seen: set[str] = set()
        current: str | None = newest
        while current and current not in seen:  # `seen` also stops a loop written earlier
            seen.add(current)
            before = self.version(name, current, "promote").tags.get(PREVIOUS_CHAMPION_TAG)
            if before != version.version:
                current = before
                continue
            try:
                if skipped and skipped != current:
                    self.client.set_model_version_tag(name, current, PREVIOUS_CHAMPION_TAG, skipped)
                else:
                    self.client.delete_model_version_tag(name, current, PREVIOUS_CHAMPION_TAG)
            except MlflowException as exc:
                why = (
                    f"cannot take v{version.version} out of the history of v{current}: "
                    f"{one_line(exc)}"
                )
                raise StepFailed("promote", why) from None
            log.info("v%s now rolls back to %s", current, f"v{skipped}" if skipped else "nothing")
            return

    def record_failure(self, name: str, version: str, tags: dict[str, str]) -> None:
        """Tag a version that failed a rollout with what failed; a warning if MLflow refuses
        (the command fails anyway, with the same reason)."""
        try:
            for key, value in tags.items():
                self.client.set_model_version_tag(name, version, key, value)
        except MlflowException as exc:
            log.warning("could not tag %s v%s with its failure: %s", name, version, one_line(exc))

    def version(self, name: str, version: str, step: str) -> ModelVersion:
        try:
            return self.client.get_model_version(name, version)
        except MlflowException as exc:
            why = f"{name} v{version} not found" if _missing(exc) else one_line(exc)
            raise StepFailed(step, why) from None

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(name, alias, version)

    def clear_alias(self, name: str, alias: str) -> None:
        # Deleting an alias that is not set is not an error in MLflow: safe to call always.
        self.client.delete_registered_model_alias(name, alias)

    def promote(
        self, name: str, version: ModelVersion, previous: str | None, tags: dict[str, Any]
    ) -> None:
        """Champion → `version` with its deploy record: `tags` set, and the failure tags it
        carries (as read into `version`) deleted; the alias is put back if tagging fails."""
        number = version.version
        try:
            self.set_alias(name, CHAMPION, number)
        except MlflowException as exc:
            raise StepFailed(
                "promote", f"cannot move {CHAMPION} to v{number}: {one_line(exc)}"
            ) from None
        try:
            for key, value in tags.items():
                self.client.set_model_version_tag(name, number, key, str(value))
            for key in FAILED_TAGS:
                if key in (version.tags or {}):
                    self.client.delete_model_version_tag(name, number, key)
        except MlflowException as exc:
            try:
                if previous:
                    self.set_alias(name, CHAMPION, previous)
                else:
                    self.clear_alias(name, CHAMPION)
            except MlflowException as undo_exc:
                why = f"{one_line(exc)}; putting {CHAMPION} back also failed: {one_line(undo_exc)}"
                raise StepFailed("promote", why) from None
            raise StepFailed("promote", f"cannot tag v{number}: {one_line(exc)}") from None
