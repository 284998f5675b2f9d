"""The cluster policies of the local platform (`make up`): the platform's own, and sensors
that look often.

A partition sensor waits minutes between looks on a cluster, where each look is an S3 request
(ml_platform.sensors); on one machine a look is a glob on the local disk, and someone who has
just dropped the day's file should not wait five minutes for the run to go on. With
ML_PLATFORM_LOCAL_POKE_S set (the local platform sets it), no sensor waits longer than that
between looks, whether it pokes in a worker or its trigger polls in the triggerer.
"""

from __future__ import annotations

import os
from typing import Any

from ml_platform.policies import dag_policy, pod_mutation_hook  # noqa: F401
from ml_platform.policies import task_policy as platform_task_policy

LOCAL_POKE_ENV = "ML_PLATFORM_LOCAL_POKE_S"  # set by ml_platform.local.stack


def local_poke_cap() -> float | None:
    value = os.environ.get(LOCAL_POKE_ENV, "").strip()
    return float(value) if value else None


def task_policy(task: Any) -> None:
    platform_task_policy(task)
    cap = local_poke_cap()
    interval = getattr(task, "poke_interval", None)
    if cap and isinstance(interval, int | float) and interval > cap:
        task.poke_interval = cap
