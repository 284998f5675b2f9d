"""deploy_or_skip: evaluate's verdict, and a person's when the day drifted.

evaluate says should_deploy, and needs_approval when the day's PSI against the champion's
profile reached the spec's promotion.drift_threshold. Without that, the gate branches at once
(deploy, or skip_deploy). With it, the task waits for a person (Airflow's human-in-the-loop:
the "Required actions" page, or the HITL REST API) to choose Deploy or Skip; after
promotion.approval_timeout_hours it takes Skip. Who decided, and when, is pushed as the
`approval` XCom, which notify reports.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLBranchOperator

DEPLOY = "Deploy"
SKIP = "Skip"
APPROVAL_KEY = "approval"

# Rendered for every run; only a run that waits shows it, so the rest renders nothing.
_BODY = """\
{% set e = ti.xcom_pull(task_ids='EVALUATE') %}{% if e.get('needs_approval') %}\
**{{ params.model_name }}**: {{ e.reason }}

Drift against {{ e.drift.reference }} (PSI threshold {{ e.drift.threshold }}):
{% for name, d in e.drift.features.items() | sort %}\
- `{{ name }}`: PSI {{ '%.3f' % d.psi }}{% if name in e.drift.drifted %} (drifted){% endif %}
{% endfor %}
Candidate {{ e.metric }} {{ '%.4f' % e.candidate.score }} (run {{ e.candidate.run_id }}); \
champion version {{ e.champion.version }}.
Choose **Deploy** to serve the candidate, **Skip** to keep the champion \
(taken by itself after TIMEOUT).
{% endif %}"""


class DeployGate(HITLBranchOperator):
    """Branch to `deploy` or `skip_deploy`; ask a person first when evaluate says so."""

    def __init__(
        self,
        *,
        evaluate_task_id: str,
        deploy_task_id: str,
        skip_task_id: str,
        response_timeout: timedelta,
        **kwargs: Any,
    ) -> None:
        hours = response_timeout.total_seconds() / 3600
        super().__init__(
            subject="Deploy {{ params.model_name }} on a drifted day?",
            body=_BODY.replace("EVALUATE", evaluate_task_id).replace("TIMEOUT", f"{hours:g} h"),
            options=[DEPLOY, SKIP],
            options_mapping={DEPLOY: deploy_task_id, SKIP: skip_task_id},
            defaults=SKIP,  # no answer in time: the champion stays
            response_timeout=response_timeout,
            **kwargs,
        )
        self.evaluate_task_id = evaluate_task_id
        self.deploy_task_id = deploy_task_id
        self.skip_task_id = skip_task_id

    def execute(self, context: Any) -> Any:
        evaluation = context["ti"].xcom_pull(task_ids=self.evaluate_task_id)
        self.log.info("evaluate: %s", evaluation["reason"])
        if evaluation["should_deploy"] and evaluation.get("needs_approval"):
            self.log.info("the day drifted: waiting for a person to choose Deploy or Skip")
            return super().execute(context)
        context["ti"].xcom_push(key=APPROVAL_KEY, value={"required": False})
        target = self.deploy_task_id if evaluation["should_deploy"] else self.skip_task_id
        return self.do_branch(context, target)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        chosen = list(event.get("chosen_options") or [])
        user = event.get("responded_by_user")
        responded_at = event.get("responded_at")
        record = {
            "required": True,
            "chosen": chosen[0] if chosen else None,
            "timed_out": bool(event.get("timedout")),
            "responded_by": (user or {}).get("name") if isinstance(user, dict) else user,
            "responded_at": responded_at.isoformat() if responded_at else None,
        }
        self.log.info("approval: %s", describe_approval(record))
        context["ti"].xcom_push(key=APPROVAL_KEY, value=record)
        return super().execute_complete(context, event)


def describe_approval(record: dict[str, Any] | None) -> str:
    """One line for the summary: who decided, or that nobody needed to."""
    if not record or not record.get("required"):
        return "not needed (no drift above the spec's threshold)"
    if record.get("timed_out"):
        return f"nobody answered in time: {SKIP} by default"
    return f"{record.get('chosen')} chosen by {record.get('responded_by') or 'unknown'}"
