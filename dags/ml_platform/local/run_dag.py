"""Run a DAG of this repo on one machine: real Airflow (dag.test), container tasks as processes.

    python -m ml_platform.local.run_dag DAG_ID [--date D] [--conf JSON]
        [--generate-data | --existing-data] [--approve | --reject] [--approval-timeout S]

The environment must be set before Airflow is imported, so this runs in its own process;
`local_environment` is what ml_platform.local.demo (and the tests) hand to it. With
--generate-data, each partition the DAG waits for is generated first, from the demo source
its DAG named (ml_platform.local.partitions); with --existing-data, the partition already
under <local dir>/datasets/.../daily/<date>/ is used as it is (the run stops with one line
when there is none). A task waiting for a person (human-in-the-loop) is answered by
ml_platform.local.approvals: --approve, --reject, the terminal, or its defaults at the deadline.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ml_platform.airflow_pools import create_pools
from ml_platform.local.approvals import ApprovalPolicy, answering, policy_from_flags
from ml_platform.local.failures import record_failures
from ml_platform.local.notifications import (
    local_notifications,
    read_xcom_from_metadata_db,
    smtp_connection,
    watching_deadlines,
)
from ml_platform.local.partitions import (
    daily_partition_dir,
    demo_source,
    generate_partition,
    waited_prefixes,
)
from ml_platform.local.runner import run_every_pod_locally
from ml_platform.settings import CONFIG_ENV, DEFAULT_CONFIG_FILE, RUNTIME_ENV, platform_config

DAGS_FOLDER = Path(__file__).resolve().parents[2]
# The platform's three cluster policies, as the Helm values install them on a cluster.
LOCAL_SETTINGS = (
    "from ml_platform.policies import dag_policy, pod_mutation_hook, task_policy  # noqa: F401\n"
)
log = logging.getLogger("run_dag")


def local_platform_config(
    local_dir: Path, mlflow_uri: str, smtp_port: int | None = None
) -> dict[str, Any]:
    """The kind stack's catalog and names, with MLflow, datasets and (with `smtp_port`) the
    notifications' SMTP server on this machine."""
    doc = json.loads(DEFAULT_CONFIG_FILE.read_text())
    doc["environment"] = "local"
    doc["mlflow"]["tracking_uri"] = mlflow_uri
    doc["storage"]["datasets_uri"] = f"file://{(local_dir / 'datasets').resolve()}"
    doc["storage"].pop("endpoint_url", None)
    if smtp_port is not None:
        doc["notifications"] = local_notifications()
    return doc


def local_environment(
    local_dir: Path, mlflow_uri: str, dags_folder: Path = DAGS_FOLDER, smtp_port: int | None = None
) -> dict[str, str]:
    """Environment variables that make Airflow and the platform run on this machine;
    `smtp_port`: the local SMTP server notifications go to (ml_platform.local.notifications)."""
    local_dir = local_dir.resolve()
    airflow_home = local_dir / "airflow"
    env = {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(Path(dags_folder).resolve()),
        # The runner itself lives in the DAGs folder's platform library.
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(DAGS_FOLDER), os.environ.get("PYTHONPATH")])
        ),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        # The partition sensor's File connection: paths are absolute.
        "AIRFLOW_CONN_FS_DEFAULT": json.dumps({"conn_type": "fs", "extra": {"path": "/"}}),
        RUNTIME_ENV: "local",
        CONFIG_ENV: json.dumps(local_platform_config(local_dir, mlflow_uri, smtp_port)),
        "MLFLOW_TRACKING_URI": mlflow_uri,
        "DEPLOYER_TARGET": "local",
        "DEPLOYER_STATE_DIR": str(local_dir / "deployer"),
    }
    if smtp_port is not None:
        env["AIRFLOW_CONN_SMTP_DEFAULT"] = smtp_connection(smtp_port)
    return env


def prepare_airflow_home(local_settings: str = LOCAL_SETTINGS) -> None:
    """Metadata DB migrated, the platform's policies installed and its GPU pools created, as on
    the cluster (`local_settings`: what airflow_local_settings.py holds)."""
    home = Path(os.environ["AIRFLOW_HOME"])
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "airflow_local_settings.py").write_text(local_settings)
    airflow = str(Path(sys.executable).with_name("airflow"))
    log.info("migrating the local Airflow metadata DB in %s", home)
    subprocess.run([airflow, "db", "migrate"], check=True, capture_output=True, timeout=300)
    pools = create_pools(platform_config())
    log.info("Airflow pools for GPUs: %s", ", ".join(pools) or "none")


def load_dag(dag_id: str) -> Any:
    """The DAG from the DAGs folder, parsed as the DAG processor does (cluster policies too)."""
    from airflow.dag_processing.dagbag import DagBag

    from ml_platform.checks.runner import import_error_line

    dags_folder = os.environ["AIRFLOW__CORE__DAGS_FOLDER"]
    # The DagBag logs each failed file's whole traceback; the one line below says it instead.
    parsing_log = logging.getLogger("airflow.dag_processing")
    level = parsing_log.level
    parsing_log.setLevel(logging.CRITICAL)
    try:
        bag = DagBag(dag_folder=dags_folder)
    finally:
        parsing_log.setLevel(level)
    # As the DAG processor does: a broken or refused file is reported and skipped; the other
    # files' DAGs still run.
    broken = [import_error_line(path, error) for path, error in sorted(bag.import_errors.items())]
    for line in broken:
        log.warning("run_dag: skipped a DAG file that does not load: %s", line)
    dag = bag.dags.get(dag_id)  # a fresh bag: get_dag would ask the metadata DB to refresh it
    if dag is None:
        detail = f"; files that do not load: {'; '.join(broken)}" if broken else ""
        raise SystemExit(
            f"run_dag: no DAG {dag_id!r} in {dags_folder} (have: {', '.join(bag.dag_ids)})"
            f"{detail}: pass one of those, or fix the file that should define it"
        )
    return dag


def generate_data(dag: Any, local_dir: Path, day: date, drift: float, rows: int | None) -> None:
    """The day's partition of every dataset the DAG waits for, from its demo source."""
    for prefix in waited_prefixes(dag, local_dir):
        where = daily_partition_dir(local_dir, day, prefix)
        source = demo_source(prefix)
        if source is None:
            if any(where.glob("*.parquet")):
                log.info("no demo source for %s: using the partition already there", where)
                continue
            raise SystemExit(
                f"run_dag: {dag.dag_id} waits for {where} and no demo data source is known for "
                "it: pass local_source=... to training_dag, or put a Parquet file there"
            )
        log.info("generating the %s partition from %s (drift %.2f)", day, source, drift)
        generate_partition(local_dir, day, drift, rows, source=source, prefix=prefix)


def require_existing_data(dag: Any, local_dir: Path, day: date) -> None:
    """Every partition the DAG waits for is already there: nothing is generated."""
    for prefix in waited_prefixes(dag, local_dir):
        where = daily_partition_dir(local_dir, day, prefix)
        if not any(where.glob("*.parquet")):
            raise SystemExit(
                f"run_dag: --existing-data: no Parquet file in {where}: put the day's "
                "partition there, or leave --existing-data out to generate demo data"
            )
        log.info("using the partition already in %s", where)


def run(
    dag: Any,
    logical_date: datetime,
    conf: dict[str, Any],
    approvals: ApprovalPolicy | None = None,
) -> dict[str, Any]:
    """dag.test() one run; returns the run's state, each task's states and results.

    `approvals` answers the run's human-in-the-loop requests (default: their defaults at
    the deadline)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag_id = dag.dag_id
    started = time.monotonic()
    failures = record_failures()
    read_xcom_from_metadata_db()  # for the DAG callbacks that report the run's end
    with (
        answering(dag_id, approvals or ApprovalPolicy()) as responder,
        watching_deadlines(dag) as deadlines,
    ):
        dag_run = dag.test(logical_date=logical_date, run_conf=conf or None)
    wall_s = time.monotonic() - started
    with create_session() as session:
        task_states: dict[str, list[str]] = {}
        durations: dict[str, float] = {}
        for ti in dag_run.get_task_instances(session=session):
            task_states.setdefault(ti.task_id, []).append(str(ti.state))
            durations[f"{ti.task_id}[{ti.map_index}]"] = ti.duration or 0.0
        xcoms = session.scalars(XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_id)).all()
        results = {
            x.task_id: XComModel.deserialize_value(x)
            for x in xcoms
            if x.key == "return_value" and x.map_index < 0
        }
        # Runs this one triggered (e.g. retraining) are queued for a scheduler, not run here.
        all_runs = session.scalars(select(DagRun)).all()
        dag_runs = [
            {"dag_id": r.dag_id, "run_id": r.run_id, "state": str(r.state)} for r in all_runs
        ]
    return {
        "dag_id": dag_id,
        "run_id": dag_run.run_id,
        "state": str(dag_run.state),
        "wall_s": round(wall_s, 2),
        "task_order": [task.task_id for task in dag.tasks],
        "task_states": task_states,
        "task_durations_s": durations,
        "results": results,
        "dag_runs": dag_runs,
        "approvals": responder.answered,
        "failures": failures.reasons,
        "deadlines_missed": deadlines.fired,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_dag", description=__doc__.splitlines()[0])
    parser.add_argument("dag_id")
    parser.add_argument("--date", type=date.fromisoformat, default=date.today())
    parser.add_argument("--conf", type=json.loads, default={}, help="DAG params as JSON")
    parser.add_argument("--result-file", type=Path, help="write the run's outcome here as JSON")
    data = parser.add_mutually_exclusive_group()
    data.add_argument(
        "--generate-data",
        action="store_true",
        help="generate the day's partition first when the DAG waits for it",
    )
    data.add_argument(
        "--existing-data",
        action="store_true",
        help="run on the day's partition already under the local datasets; never generate",
    )
    parser.add_argument("--drift", type=float, default=0.0, help="drift of generated data")
    parser.add_argument(
        "--rows", type=int, help="rows of generated data (default: the source's own)"
    )
    answer = parser.add_mutually_exclusive_group()
    answer.add_argument("--approve", action="store_true", help="approve what the run asks")
    answer.add_argument("--reject", action="store_true", help="reject what the run asks")
    parser.add_argument(
        "--approval-timeout",
        type=float,
        metavar="S",
        help="with no answer given, take a request's defaults after S seconds "
        "(default: at its own deadline; a terminal is asked instead when there is one)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if os.environ.get(RUNTIME_ENV) != "local" or "AIRFLOW_HOME" not in os.environ:
        parser.error("start it with local_environment() set (see ml_platform.local.demo)")
    prepare_airflow_home()
    run_every_pod_locally()
    dag = load_dag(args.dag_id)
    local_dir = Path(os.environ["AIRFLOW_HOME"]).parent  # local_environment's layout
    if args.generate_data:
        generate_data(dag, local_dir, args.date, args.drift, args.rows)
    elif args.existing_data:
        require_existing_data(dag, local_dir, args.date)
    logical_date = datetime(args.date.year, args.date.month, args.date.day, tzinfo=UTC)
    policy = policy_from_flags(args.approve, args.reject, args.approval_timeout)
    outcome = run(dag, logical_date, args.conf, policy)
    if args.result_file:
        args.result_file.write_text(json.dumps(outcome, indent=2, default=str))
    print(json.dumps({k: outcome[k] for k in ("dag_id", "run_id", "state", "wall_s")}))
    return 0 if outcome["state"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
