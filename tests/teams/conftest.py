"""Shared by every team's DAG tests (tests/teams/<team>/test_<team>_<dag>.py).

Airflow reads AIRFLOW_HOME once, when `airflow` is first imported, so it is pointed at a
throwaway folder here, before any test module imports Airflow: parsing a DAG needs no
database, and no airflow_local_settings of this machine applies.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

if "airflow" not in sys.modules:
    _AIRFLOW_HOME = tempfile.mkdtemp(prefix="airflow-home-")
    os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
    atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)
