"""infra/ on sys.path, and a throwaway AIRFLOW_HOME for the contract test's DagBags.

Airflow reads AIRFLOW_HOME once, when it is first imported; as in tests/dags/conftest.py it
is pointed at a temporary folder before any test module imports Airflow, so no
airflow_local_settings is found and parsing needs no database.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

INFRA_DIR = Path(__file__).resolve().parents[2] / "infra"
if str(INFRA_DIR) not in sys.path:
    sys.path.insert(0, str(INFRA_DIR))

if "airflow" not in sys.modules:
    _AIRFLOW_HOME = tempfile.mkdtemp(prefix="airflow-home-")
    os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
    atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)
