"""deploy, rollback and status: the registry and a target, in an order that can be undone.

Both deploy and rollback replace what serves in the same steps: rollout → readiness →
smoke_test → switch → promote. A failure at any of them restores the target (the previous
revision keeps serving) before the champion alias ever moves; the alias is the last thing to
change, so it only ever names a version that answered the smoke test at the endpoint.
"""

from __future__ import annotations

import getpass
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mlflow.exceptions import MlflowException

from deployer import smoke
from deployer.errors import StepFailed, one_line
from deployer.registry import (
    CHALLENGER,
    CHAMPION,
    DEPLOYED_AT_TAG,
    FAILED_TAGS,
    PREVIOUS_CHAMPION_TAG,
    Registry,
)
from deployer.targets import Revision, Target

log = logging.getLogger(__name__)


TEAM_ENV = "DEPLOYER_TEAM"
# The MLflow login of the team's model servers (set by the platform's training DAG on a
# cluster): granted READ on the model before it is rolled out.
SERVING_USER_ENV = "DEPLOYER_SERVING_USER"


def deployed_by() -> str:
    """Who deploys: the Airflow DAG run when inside one, else the local user."""
    dag_id = os.environ.get("AIRFLOW_CTX_DAG_ID")
    if dag_id:
        return f"airflow:{dag_id}/{os.environ.get('AIRFLOW_CTX_DAG_RUN_ID', '')}"
    return f"user:{getpass.getuser()}"


def deploying_team() -> str | None:
    """The team whose DAG runs this deploy (DEPLOYER_TEAM, set by the platform's training
    DAG), or None for a person at a terminal, whose MLflow identity decides what they may do."""
    return os.environ.get(TEAM_ENV, "").strip() or None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


INTERRUPTED = "interrupted"  # the step recorded for a deploy killed before it finished
TAG_VALUE_LIMIT = 500


def _failure_tags(command: str, step: str, why: str) -> dict[str, str]:
    values = (step, command, why[:TAG_VALUE_LIMIT], _now())
    return dict(zip(FAILED_TAGS, values, strict=True))


def _recover(
    registry: Registry, target: Target, model_name: str, aliases: dict[str, str], command: str
) -> dict[str, str]:
    """Clean up after a command that was killed half-way (SIGKILL, a lost node): a target
    with a real lock (local) puts its leftover servers right; a leftover `challenger` is
    cleared and its version tagged as interrupted. The aliases as they are afterwards."""
    champion = aliases.get(CHAMPION)
    recover = getattr(target, "recover", None)
    if recover is not None:
        recover(champion)
    stale = aliases.get(CHALLENGER)
    # Without a lock (kubernetes) a challenger may belong to a deploy running right now: only
    # a deploy or rollback, which the DAG never runs beside another, takes it over there.
    if not stale or (recover is None and command == "status"):
        return aliases
    log.info("clearing %s v%s left by an interrupted deploy", CHALLENGER, stale)
    try:
        registry.clear_alias(model_name, CHALLENGER)
    except MlflowException as exc:
        why = f"cannot clear {CHALLENGER} v{stale} left by an interrupted deploy: {one_line(exc)}"
        raise StepFailed("recover", why) from None
    if stale != champion:
        why = f"the deploy was interrupted before it finished (found by {command})"
        registry.record_failure(model_name, stale, _failure_tags("deploy", INTERRUPTED, why))
    return {alias: version for alias, version in aliases.items() if alias != CHALLENGER}


def _replace_serving(
    target: Target,
    revision: Revision,
    request: smoke.SmokeRequest,
    timeout_s: float,
    promote: Callable[[], None],
) -> None:
    """Roll `revision` out and promote it, or put the previous revision back and raise."""
    step = "rollout"
    try:
        target.start(revision)
        step = "readiness"
        url = target.wait_ready(timeout_s)
        step = "smoke_test"
        smoke.check(url, request)
        step = "switch"
        target.switch()
        step = "promote"
        promote()
    except Exception as exc:
        failure = exc if isinstance(exc, StepFailed) else StepFailed(step, one_line(exc))
        log.error("%s; restoring the previous revision", failure)
        try:
            target.restore(timeout_s)
        except Exception as restore_exc:
            why = f"{failure.why}; restoring the previous revision also failed"
            raise StepFailed(failure.step, f"{why}: {one_line(restore_exc)}") from exc
        raise failure from exc
    target.finish()


def _clear_challenger(registry: Registry, model_name: str) -> str | None:
    """Clear the alias; the error as text when that fails (it is never worth a failed deploy)."""
    try:
        registry.clear_alias(model_name, CHALLENGER)
        return None
    except MlflowException as exc:
        log.warning("could not clear %s of %s: %s", CHALLENGER, model_name, one_line(exc))
        return one_line(exc)


def deploy(
    registry: Registry,
    target: Target,
    *,
    model_name: str,
    run_id: str,
    artifact_path: str,
    timeout_s: float,
) -> dict[str, Any]:
    """Register the run's model, roll it out, smoke-test it, make it champion."""
    team = deploying_team()
    # Checked first: another team's model is refused before anything is read or created.
    first_of_team = team is not None and not registry.check_owner(model_name, team)
    run_model = registry.run_model(run_id, artifact_path)
    request = smoke.smoke_request(run_model.uri, run_model.mlmodel)
    _recover(registry, target, model_name, registry.aliases(model_name, "recover", True), "deploy")
    if first_of_team:
        registry.create_owned(model_name, team)
    serving_user = os.environ.get(SERVING_USER_ENV, "").strip()
    if serving_user:
        registry.grant_read(serving_user, model_name, run_model)
    version, _ = registry.find_or_register(model_name, run_model)
    previous = registry.aliases(model_name, "register").get(CHAMPION)
    revision = Revision(model_name, version.version)
    try:
        registry.set_alias(model_name, CHALLENGER, revision.version)
    except MlflowException as exc:
        raise StepFailed("register", f"cannot set {CHALLENGER}: {one_line(exc)}") from None
    log.info(
        "deploying %s v%s to %s (champion now: %s)",
        model_name,
        revision.version,
        target.name,
        f"v{previous}" if previous else "none",
    )

    def promote() -> None:
        tags: dict[str, Any] = {
            DEPLOYED_AT_TAG: _now(),
            "deployed_by": deployed_by(),
            "deployed_target": target.name,
            "deployed_endpoint": target.endpoint,
            "source_run_id": run_id,
            **{f"metric.{key}": value for key, value in sorted(run_model.metrics.items())},
        }
        if previous and previous != revision.version:  # a redeploy keeps its older record
            tags[PREVIOUS_CHAMPION_TAG] = previous
            # An older version coming back must not stay further down the history too, or
            # rolling back would come round to it again and again.
            registry.unlink_from_history(model_name, version, previous)
        registry.promote(model_name, version, previous, tags)

    try:
        _replace_serving(target, revision, request, timeout_s, promote)
    except StepFailed as failure:
        registry.record_failure(
            model_name, revision.version, _failure_tags("deploy", failure.step, failure.why)
        )
        not_cleared = _clear_challenger(registry, model_name)
        if not_cleared:
            why = f"{failure.why}; {CHALLENGER} not cleared: {not_cleared}"
            raise StepFailed(failure.step, why) from None
        raise
    _clear_challenger(registry, model_name)
    log.info("%s v%s is champion, serving at %s", model_name, revision.version, target.endpoint)
    return {
        "model_name": model_name,
        "version": revision.version,
        "model_uri": revision.model_uri,
        "endpoint": target.endpoint,
        "previous_version": previous,
        "run_id": run_id,
        "target": target.name,
        "status": "deployed",
    }


def rollback(
    registry: Registry, target: Target, *, model_name: str, timeout_s: float
) -> dict[str, Any]:
    """Serve and crown the champion before the current one again."""
    team = deploying_team()
    if team:
        registry.check_owner(model_name, team)
    aliases = registry.aliases(model_name, "champion")
    current = aliases.get(CHAMPION)
    if not current:
        raise StepFailed("champion", f"{model_name} has no {CHAMPION} to roll back from")
    tags = registry.version(model_name, current, "champion").tags
    previous = tags.get(PREVIOUS_CHAMPION_TAG)
    if not previous:
        why = f"{model_name} v{current} records no {PREVIOUS_CHAMPION_TAG}: nothing to roll back to"
        raise StepFailed("previous", why)
    restored = registry.version(model_name, previous, "previous")
    revision = Revision(model_name, previous)
    request = smoke.smoke_request(revision.model_uri)
    _recover(registry, target, model_name, aliases, "rollback")
    log.info("rolling %s back from v%s to v%s on %s", model_name, current, previous, target.name)

    def promote() -> None:
        # The previous version keeps its own previous_champion: a second rollback goes further.
        record = {
            DEPLOYED_AT_TAG: _now(),
            "deployed_by": deployed_by(),
            "deployed_target": target.name,
            "deployed_endpoint": target.endpoint,
            "rolled_back_from": current,
        }
        registry.promote(model_name, restored, current, record)

    try:
        _replace_serving(target, revision, request, timeout_s, promote)
    except StepFailed as failure:
        tags = _failure_tags("rollback", failure.step, failure.why)
        registry.record_failure(model_name, previous, tags)
        raise
    return {
        "model_name": model_name,
        "version": previous,
        "model_uri": revision.model_uri,
        "endpoint": target.endpoint,
        "rolled_back_from": current,
        "target": target.name,
        "status": "rolled_back",
    }


def status(registry: Registry, target: Target, *, model_name: str) -> dict[str, Any]:
    """The champion alias next to what the target actually serves."""
    aliases = registry.aliases(model_name, "champion")
    aliases = _recover(registry, target, model_name, aliases, "status")
    champion = aliases.get(CHAMPION)
    serving = target.current()
    serving_version = serving.version if serving else None
    in_sync = champion == serving_version
    return {
        "model_name": model_name,
        "champion": champion,
        "challenger": aliases.get(CHALLENGER),
        "serving": serving_version,
        "endpoint": serving.endpoint if serving else target.endpoint,
        "detail": serving.detail if serving else "nothing deployed",
        "in_sync": in_sync,
        "target": target.name,
        "status": "in_sync" if in_sync else "out_of_sync",
    }
