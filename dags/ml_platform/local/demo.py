"""The platform's main job on one machine (`make demo`).

Starts a real MLflow server, generates the day's data with the trainer, runs the training
pipeline DAG with real Airflow in the local runtime, and prints what happened.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from ml_platform.local.mlflow_server import local_mlflow_server
from ml_platform.local.run_dag import local_environment

log = logging.getLogger("demo")
DAG_ID = "ml_training_pipeline"


def _console_script(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def generate_partition(local_dir: Path, day: date, drift: float, rows: int) -> str:
    uri = f"file://{(local_dir / 'datasets' / 'daily' / day.isoformat()).resolve()}"
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                _console_script("trainer"),
                "--xcom-path",
                f"{tmp}/return.json",
                "generate",
                "--date",
                day.isoformat(),
                "--output-uri",
                uri,
                "--drift",
                str(drift),
                "--rows",
                str(rows),
            ],
            check=True,
            timeout=300,
        )
    return uri


def run_dag_locally(
    local_dir: Path,
    mlflow_uri: str,
    day: date,
    conf: dict[str, Any],
    dag_id: str = DAG_ID,
    timeout_s: float = 1800,
) -> dict[str, Any]:
    """Run the DAG in a process of its own (Airflow reads its settings at import)."""
    env = {**os.environ, **local_environment(local_dir, mlflow_uri)}
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "outcome.json"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "ml_platform.local.run_dag",
                dag_id,
                "--date",
                day.isoformat(),
                "--conf",
                json.dumps(conf),
                "--result-file",
                str(result_file),
            ],
            env=env,
            timeout=timeout_s,
            check=False,
        )
        if not result_file.exists():
            raise SystemExit("demo: the DAG run did not finish; see the output above")
        return json.loads(result_file.read_text())


def format_summary(outcome: dict[str, Any], mlflow_ui: str) -> str:
    results = outcome["results"]
    lines = [f"DAG run {outcome['run_id']}: {outcome['state']} in {outcome['wall_s']:.0f}s"]
    if "check_drift" in results:
        report = results["check_drift"]
        triggered = outcome["task_states"].get("trigger_training") == ["success"]
        lines.append(f"  drift check:  {report['reason']}")
        lines.append(f"  retraining:   {'triggered' if triggered else 'not needed'}")
        return "\n".join(lines)
    summary = results.get("notify")
    if not summary:
        failed = [t for t, states in outcome["task_states"].items() if "failed" in states]
        lines.append(f"  failed tasks: {', '.join(failed) or 'none'}")
        return "\n".join(lines)
    metrics = summary["best_metrics"]
    lines += [
        f"  best params:  {summary['best_params']}",
        "  best metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())),
        f"  decision:     {summary['reason']}",
    ]
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
    lines.append(f"  MLflow UI:    {mlflow_ui}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    parser.add_argument("--local-dir", type=Path, default=Path(".local"))
    parser.add_argument("--mlflow-port", type=int, default=5000)
    parser.add_argument("--date", type=date.fromisoformat, default=date.today())
    parser.add_argument("--drift", type=float, default=0.0)
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--conf", type=json.loads, default={}, help="DAG params as JSON")
    parser.add_argument("--dag", default=DAG_ID, help="the DAG to run (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    local_dir = args.local_dir.resolve()
    with local_mlflow_server(local_dir / "mlflow", port=args.mlflow_port) as server:
        log.info("generating the %s partition (drift %.2f)", args.date, args.drift)
        generate_partition(local_dir, args.date, args.drift, args.rows)
        log.info("running %s with real Airflow in the local runtime", args.dag)
        outcome = run_dag_locally(local_dir, server.url, args.date, args.conf, dag_id=args.dag)
    print()
    print(format_summary(outcome, "run `make mlflow-ui`, then open http://127.0.0.1:5000"))
    print(f"  Airflow task logs: {local_dir / 'airflow' / 'logs'}")
    return 0 if outcome["state"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
