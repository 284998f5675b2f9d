"""Run by test_gpu_pool_queueing in a process of its own (AIRFLOW_HOME, DAGS_FOLDER and the
platform's airflow_local_settings set by the test): parse a DAG file with the platform's
policies, store it as the DAG processor does, start two runs of a GPU sweep, and ask the real
scheduler which task instances it would queue. Prints one JSON line: queued per run, the pool.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta

from airflow import settings
from airflow.dag_processing.bundles.manager import DagBundlesManager
from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
from airflow.jobs.job import Job
from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
from airflow.models.dagrun import DagRun, get_or_create_dagrun
from airflow.models.pool import Pool
from airflow.models.serialized_dag import SerializedDagModel
from airflow.models.taskinstance import TaskInstance
from airflow.sdk import timezone
from airflow.utils.state import TaskInstanceState
from airflow.utils.types import DagRunTriggeredByType, DagRunType
from sqlalchemy import func, select

from ml_platform.airflow_pools import create_pools
from ml_platform.settings import platform_config


def main(dags_folder: str, dag_id: str, runs: int, slots: int | None) -> None:
    create_pools(platform_config())
    session = settings.Session()
    if slots is not None:  # the control: the same sweep with a pool that holds more
        for name in platform_config().airflow_pools:
            Pool.create_or_update_pool(name, slots, "control", True, session=session)
    manager = DagBundlesManager()
    manager.sync_bundles_to_db(session=session)
    session.commit()
    bundle = next(iter(manager.get_all_dag_bundles()))
    bag = BundleDagBag(dag_folder=dags_folder, bundle_path=bundle.path, bundle_name=bundle.name)
    assert not bag.import_errors, bag.import_errors
    sync_bag_to_db(bag, bundle.name, None)
    dag = SerializedDagModel.get_dag(dag_id, session=session)
    start = timezone.utcnow() - timedelta(days=runs)
    for index in range(runs):
        logical = start + timedelta(days=index)
        run = get_or_create_dagrun(
            dag=dag,
            start_date=logical,
            logical_date=logical,
            data_interval=dag.timetable.infer_manual_data_interval(run_after=logical),
            run_after=logical,
            run_id=DagRun.generate_run_id(
                run_type=DagRunType.MANUAL, logical_date=logical, run_after=logical
            ),
            session=session,
            conf={},
            triggered_by=DagRunTriggeredByType.TEST,
            triggering_user_name="gpu-pool-test",
        )
        schedulable, _ = run.update_state(session=session)
        for ti in schedulable:
            ti.try_number += 1
            ti.state = TaskInstanceState.SCHEDULED
        session.commit()
    runner = SchedulerJobRunner(job=Job())
    queued = runner._executable_task_instances_to_queued(max_tis=64, session=session)
    session.commit()
    task = dag.get_task("train")
    per_run: dict[str, int] = {}
    for ti in queued:
        per_run[ti.run_id] = per_run.get(ti.run_id, 0) + 1
    instances = session.scalar(
        select(func.count()).select_from(TaskInstance).where(TaskInstance.task_id == "train")
    )
    print(
        json.dumps(
            {
                "queued": sorted(per_run.values()),
                "train_instances": instances,
                "pool": task.pool,
                "pool_slots": task.pool_slots,
                "max_active_tis_per_dagrun": task.max_active_tis_per_dagrun,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if sys.argv[4:] else None)
