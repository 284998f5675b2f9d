"""Run a DAG on one machine (`make demo` for the training pipeline, `make run-dag DAG=...`).

Starts a real MLflow server, generates the day's data with the trainer when the DAG waits for
it, runs the DAG with real Airflow in the local runtime, and prints what happened.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from ml_platform.approval import describe_approval
from ml_platform.local.mlflow_server import local_mlflow_server
from ml_platform.local.notifications import local_smtp_sink
from ml_platform.local.run_dag import DAGS_FOLDER, local_environment

log = logging.getLogger("demo")
DAG_ID = "ml_training_pipeline"
RESULT_SHOWN_CHARS = 160  # a task's XCom result in the summary of a DAG of any shape


@dataclass(frozen=True)
class GeneratedData:
    """The synthetic partition to generate when the DAG waits for the day's data."""

    drift: float = 0.0
    rows: int | None = None  # the source's default: 4000 churn rows, 80% of an sklearn set


def run_dag_locally(
    local_dir: Path,
    mlflow_uri: str,
    day: date,
    conf: dict[str, Any],
    dag_id: str = DAG_ID,
    timeout_s: float = 1800,
    data: GeneratedData | None = None,
    dags_folder: Path = DAGS_FOLDER,
    existing_data: bool = False,
    approval: list[str] | None = None,
) -> dict[str, Any]:
    """Run the DAG in a process of its own (Airflow reads its settings at import).

    `data` generates the day's partition first; `existing_data` runs on the one already under
    <local_dir>/datasets and stops with one line when there is none. `approval` holds run_dag's
    answer flags (`--approve`, `--reject`, `--approval-timeout S`). The run's notifications go
    to a local SMTP server that saves them under <local_dir>/notifications/; the outcome's
    `notifications` lists them.
    """
    with local_smtp_sink(local_dir / "notifications") as sink:
        env = {**os.environ, **local_environment(local_dir, mlflow_uri, dags_folder, sink.port)}
        outcome = _run_dag_process(env, dag_id, day, conf, timeout_s, data, existing_data, approval)
    outcome["notifications_dir"] = str(sink.folder)
    outcome["notifications"] = [
        {"path": str(m.path), "subject": m.subject, "to": m.to} for m in sink.received
    ]
    return outcome


def _run_dag_process(
    env: dict[str, str],
    dag_id: str,
    day: date,
    conf: dict[str, Any],
    timeout_s: float,
    data: GeneratedData | None,
    existing_data: bool,
    approval: list[str] | None,
) -> dict[str, Any]:
    command = [sys.executable, "-m", "ml_platform.local.run_dag", dag_id]
    command += ["--date", day.isoformat(), "--conf", json.dumps(conf)]
    if data is not None:
        command += ["--generate-data", "--drift", str(data.drift)]
        command += ["--rows", str(data.rows)] if data.rows is not None else []
    elif existing_data:
        command.append("--existing-data")
    command += approval or []
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "outcome.json"
        finished = subprocess.run(
            command + ["--result-file", str(result_file)],
            env=env,
            timeout=timeout_s,
            check=False,
        )
        if not result_file.exists():
            if finished.returncode != 0 and existing_data:
                raise SystemExit(finished.returncode)  # run_dag said why, in one line
            raise SystemExit("demo: the DAG run did not finish; see the output above")
        return json.loads(result_file.read_text())


def _task_lines(outcome: dict[str, Any]) -> list[str]:
    """Each task's states and XCom result, in the DAG's order: any DAG's summary."""
    states = outcome["task_states"]
    order = [t for t in outcome.get("task_order", []) if t in states]
    order += [t for t in states if t not in order]
    if not order:
        return ["  no task ran: is the date before the DAG's start_date?"]
    width = max(len(t) for t in order)
    lines = []
    for task_id in order:
        line = f"  {task_id:{width}}  {', '.join(states[task_id])}"
        if task_id in outcome["results"]:
            shown = json.dumps(outcome["results"][task_id], default=str)
            if len(shown) > RESULT_SHOWN_CHARS:
                shown = shown[: RESULT_SHOWN_CHARS - 3] + "..."
            line += f"  -> {shown}"
        lines.append(line)
    return lines


def _gate_lines(gates: dict[str, Any]) -> list[str]:
    """The numbers behind the decision: drift and the features the candidate leans on."""
    lines = []
    drift = gates.get("drift")
    if drift:
        drifted = ", ".join(drift["drifted"]) or "none"
        lines.append(
            f"  drift:        max PSI {drift['max_psi']:.3f} against the {drift['reference']} "
            f"(threshold {drift['threshold']:g}; drifted: {drifted})"
        )
    top = gates.get("importance_top") or []
    if top:
        shown = ", ".join(
            f"{t['feature']} {t['share']:.0%}" if t.get("share") is not None else t["feature"]
            for t in top
        )
        lines.append(f"  importance:   {shown}")
    return lines


def notification_lines(outcome: dict[str, Any]) -> list[str]:
    """Where the run's notifications went: the local SMTP server's saved messages."""
    sent = outcome.get("notifications")
    if sent is None:
        return []
    where = outcome.get("notifications_dir")
    lines = [f"  notifications: {len(sent)} email(s) to the local SMTP server, saved in {where}"]
    lines += [f"    {Path(m['path']).name}  {m['subject']}" for m in sent]
    for missed in outcome.get("deadlines_missed") or []:
        lines.append(f"  deadline missed: {missed['deadline']} ({missed['name']})")
    return lines


def format_summary(outcome: dict[str, Any], mlflow_ui: str) -> str:
    return "\n".join([_format_run(outcome, mlflow_ui), *notification_lines(outcome)])


def _format_run(outcome: dict[str, Any], mlflow_ui: str) -> str:
    results = outcome["results"]
    lines = [f"DAG run {outcome['run_id']}: {outcome['state']} in {outcome['wall_s']:.0f}s"]
    for task_id, reason in (outcome.get("failures") or {}).items():
        lines.append(f"  stopped at {task_id}: {reason}")
    if "check_drift" in results:
        report = results["check_drift"]
        triggered = outcome["task_states"].get("trigger_training") == ["success"]
        lines.append(f"  drift check:  {report['reason']}")
        lines.append(f"  retraining:   {'triggered' if triggered else 'not needed'}")
        return "\n".join(lines)
    summary = results.get("notify")
    if not summary or "best_metrics" not in summary:
        # Not the training pipeline, or it stopped early: every task's outcome.
        return "\n".join(lines + _task_lines(outcome) + [f"  MLflow UI:    {mlflow_ui}"])
    metrics = summary["best_metrics"]
    lines += [
        f"  best params:  {summary['best_params']}",
        "  best metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())),
        f"  decision:     {summary['reason']}",
    ]
    lines += _gate_lines(summary.get("gates") or {})
    champion = summary["champion_before"]
    lines.append(
        f"  champion before this run: version {champion['version']}"
        if champion
        else "  champion before this run: none"
    )
    deployed = summary.get("deployed")
    now = deployed["version"] if deployed else (champion or {}).get("version")
    lines.append(f"  champion now: version {now}" if now else "  champion now: none")
    if deployed:
        lines.append(
            f"  deployed:     {summary['model_name']} version {deployed['version']} "
            f"serving at {deployed['endpoint']}/invocations"
        )
    else:
        lines.append("  deployed:     nothing (the champion stays)")
    if summary.get("approval") is not None:
        lines.append(f"  approval:     {describe_approval(summary['approval'])}")
    lines.append(f"  MLflow UI:    {mlflow_ui}")
    return "\n".join(lines)


def approval_flags(args: argparse.Namespace) -> list[str]:
    """run_dag's flags for how the run's approvals are answered."""
    flags = ["--approve"] if args.approve else ["--reject"] if args.reject else []
    if args.approval_timeout is not None:
        flags += ["--approval-timeout", str(args.approval_timeout)]
    return flags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    parser.add_argument("--local-dir", type=Path, default=Path(".local"))
    parser.add_argument("--mlflow-port", type=int, default=5000)
    parser.add_argument("--date", type=date.fromisoformat, default=date.today())
    parser.add_argument("--drift", type=float, default=0.0)
    parser.add_argument(
        "--existing-data",
        action="store_true",
        help="run on the partition already under <local dir>/datasets/.../daily/<date>/",
    )
    parser.add_argument("--rows", type=int, help="default: the data source's own")
    parser.add_argument("--conf", type=json.loads, default={}, help="DAG params as JSON")
    parser.add_argument("--dag", default=DAG_ID, help="the DAG to run (default: %(default)s)")
    parser.add_argument(
        "--dags-folder", type=Path, default=DAGS_FOLDER, help="where the DAG file lies"
    )
    answer = parser.add_mutually_exclusive_group()
    answer.add_argument("--approve", action="store_true", help="approve a drifted deploy")
    answer.add_argument("--reject", action="store_true", help="refuse a drifted deploy")
    parser.add_argument(
        "--approval-timeout", type=float, metavar="S", help="no answer: defaults after S s"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    local_dir = args.local_dir.resolve()
    with local_mlflow_server(local_dir / "mlflow", port=args.mlflow_port) as server:
        log.info("running %s with real Airflow in the local runtime", args.dag)
        outcome = run_dag_locally(
            local_dir,
            server.url,
            args.date,
            args.conf,
            dag_id=args.dag,
            data=None if args.existing_data else GeneratedData(args.drift, args.rows),
            dags_folder=args.dags_folder,
            existing_data=args.existing_data,
            approval=approval_flags(args),
        )
    print()
    ui = f"run `make mlflow-ui MLFLOW_PORT={args.mlflow_port}`, then open http://127.0.0.1:{args.mlflow_port}"
    print(format_summary(outcome, ui))
    # dag.test() writes no task log files: each task's log is the output above.
    print("  Airflow task logs: in this run's output above (dag.test() writes no log files)")
    return 0 if outcome["state"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
