"""Answer human-in-the-loop requests of a local run, as a person on a cluster would.

dag.test() parks a HITL task in AWAITING_INPUT and waits for a response written from outside
(on a cluster: the Required actions page or the HITL REST API). Here a thread of the run_dag
process answers on the same metadata DB, the way the API server does (the response on the
HITL detail row, then handle_event_submit), with what the person running it chose:

- `--approve` / `--reject`: that answer, recorded as given by the local user;
- neither, on a terminal: the request is shown and the answer read from the terminal;
- neither, without a terminal: nobody answers; at the task's deadline (or after
  `--approval-timeout` seconds, whichever comes first) the request's defaults are taken, as
  the scheduler's timeout sweep does on a cluster.
"""

from __future__ import annotations

import getpass
import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

log = logging.getLogger("run_dag.approvals")

APPROVE, REJECT = "approve", "reject"
POLL_S = 0.5


@dataclass(frozen=True)
class ApprovalPolicy:
    """How the local run answers: a fixed answer, the terminal, or the deadline's defaults."""

    answer: str | None = None  # APPROVE, REJECT or None
    timeout_s: float | None = None  # a local cap on the wait before the defaults are taken
    interactive: bool = False


def choose(options: list[str], defaults: list[str] | None, answer: str) -> list[str]:
    """The option an approval or a rejection picks among a request's options.

    Approving takes the first option that is not a default (Deploy, Approve); rejecting takes
    the defaults (Skip), or the last option when there are none (Reject).
    """
    defaults = list(defaults or [])
    if answer == APPROVE:
        return [next((o for o in options if o not in defaults), options[0])]
    return defaults or [options[-1]]


def _respond(ti: Any, detail: Any, chosen: list[str] | None, user: str | None, session) -> None:
    """Write the response (or, with chosen=None, the defaults at the deadline) and resume."""
    from airflow.models.trigger import handle_event_submit
    from airflow.triggers.base import TriggerEvent
    from airflow.utils import timezone

    timed_out = chosen is None
    if timed_out and detail.defaults is None:
        event = {
            "error": "The Human-in-the-loop response timeout has passed without a response.",
            "error_type": "timeout",
        }
    else:
        detail.chosen_options = list(detail.defaults) if timed_out else chosen
        detail.params_input = {
            key: value["value"] if isinstance(value, dict) and "value" in value else value
            for key, value in (detail.params or {}).items()
        }
        detail.responded_by = None if timed_out else {"id": f"local:{user}", "name": user}
        detail.responded_at = timezone.utcnow()
        session.add(detail)
        event = detail.as_resume_event_payload(timedout=timed_out)
    handle_event_submit(TriggerEvent(event), task_instance=ti, session=session)


@dataclass(frozen=True)
class Request:
    """What a HITL request asks, read off its detail row."""

    subject: str
    body: str | None
    options: list[str]
    defaults: list[str] | None

    @classmethod
    def of(cls, detail: Any) -> Request:
        defaults = list(detail.defaults) if detail.defaults is not None else None
        return cls(detail.subject, detail.body, list(detail.options), defaults)


def _ask(request: Request) -> list[str]:
    """The request on the terminal; the answer read from it (an empty line takes the default)."""
    options = request.options
    print(f"\n=== {request.subject}\n{request.body or ''}", flush=True)
    default = list(request.defaults or [])
    while True:
        shown = " / ".join(f"[{o}]" if o in default else o for o in options)
        reply = input(f"answer ({shown}): ").strip()
        if not reply and default:
            return default
        found = [o for o in options if o.lower() == reply.lower()]
        if found:
            return found
        print(f"not one of {options}", flush=True)


class Responder(threading.Thread):
    """Polls the run's HITL requests and answers each once, by the policy."""

    def __init__(self, dag_id: str, policy: ApprovalPolicy) -> None:
        super().__init__(name="hitl-responder", daemon=True)
        self.dag_id = dag_id
        self.policy = policy
        self.user = getpass.getuser()
        self.stopped = threading.Event()
        self.seen: dict[str, float] = {}  # ti id -> when this runtime first saw it waiting
        self.answered: list[dict[str, Any]] = []

    def run(self) -> None:
        while not self.stopped.wait(POLL_S):
            try:
                self._poll()
            except Exception:  # a locked DB or a race with the run: try again next poll
                log.exception("answering a human-in-the-loop request failed; retrying")

    def _poll(self) -> None:
        from airflow.models.hitl import HITLDetail
        from airflow.models.taskinstance import TaskInstance as TI
        from airflow.utils import timezone
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState
        from sqlalchemy import select

        def waiting(session) -> list[tuple[Any, Any]]:
            tis = session.scalars(
                select(TI).where(
                    TI.dag_id == self.dag_id, TI.state == TaskInstanceState.AWAITING_INPUT
                )
            ).all()
            found = []
            for ti in tis:
                detail = session.scalar(select(HITLDetail).where(HITLDetail.ti_id == ti.id))
                if detail is not None and detail.responded_at is None:
                    found.append((ti, detail))
            return found

        with create_session() as session:
            requests = [
                (str(ti.id), ti.trigger_timeout, Request.of(detail))
                for ti, detail in waiting(session)
            ]
        for ti_id, deadline, request in requests:
            first_seen = self.seen.setdefault(ti_id, time.monotonic())
            # Decided outside any session: a person may take minutes at the terminal.
            chosen, user = self._decide(deadline, request, first_seen, timezone.utcnow())
            if chosen is False:
                continue  # nobody answers: wait for the deadline
            with create_session() as session:
                for ti, detail in waiting(session):
                    if str(ti.id) != ti_id:
                        continue
                    what = "its defaults at the deadline" if chosen is None else chosen
                    log.info("%s: %r answered with %s", ti.task_id, request.subject, what)
                    _respond(ti, detail, chosen, user, session)
                    self.answered.append({"task_id": ti.task_id, "chosen": chosen, "by": user})

    def _decide(
        self, deadline: Any, request: Request, first_seen: float, now: Any
    ) -> tuple[Any, Any]:
        """(chosen options, user); (None, None) to take the defaults; (False, None) to wait."""
        policy = self.policy
        if policy.answer is not None:
            return choose(request.options, request.defaults, policy.answer), (
                f"{self.user} (run-dag --{policy.answer})"
            )
        if policy.interactive:
            return _ask(request), self.user
        deadline_passed = deadline is not None and deadline <= now
        local_cap = policy.timeout_s is not None and (
            time.monotonic() - first_seen >= policy.timeout_s
        )
        if deadline_passed or local_cap:
            return None, None
        return False, None


@contextmanager
def answering(dag_id: str, policy: ApprovalPolicy) -> Iterator[Responder]:
    """A responder thread for the run of `dag_id` while the block runs."""
    responder = Responder(dag_id, policy)
    if policy.answer is None and not policy.interactive:
        wait = "the task's deadline" + (
            f" or {timedelta(seconds=policy.timeout_s)}" if policy.timeout_s is not None else ""
        )
        log.info("approvals: nobody answers; defaults are taken at %s", wait)
    responder.start()
    try:
        yield responder
    finally:
        responder.stopped.set()
        responder.join(timeout=10)


def policy_from_flags(
    approve: bool, reject: bool, timeout_s: float | None, stdin: Any = None
) -> ApprovalPolicy:
    """The policy of run_dag's flags; a terminal is asked only when no flag answers."""
    stdin = stdin or sys.stdin
    answer = APPROVE if approve else REJECT if reject else None
    interactive = answer is None and timeout_s is None and stdin.isatty()
    return ApprovalPolicy(answer=answer, timeout_s=timeout_s, interactive=interactive)
