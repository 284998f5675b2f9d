"""Parse time of each DAG file, after Airflow is imported (`make bench`).

Airflow's DAG processor imports the modules a DAG file imports once, before it forks a parser
per file (`parsing_pre_import_modules`), so the figure that matters is the warm one: running
the file's code with its imports already loaded. The cold figure (first parse in a fresh
interpreter, provider imports included) is printed beside it.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

DAGS = Path(__file__).resolve().parents[2] / "dags"
BUDGET_S = 0.2
REPEAT = 7

_MEASURE = r"""
import importlib.util, statistics, sys, time, uuid
import airflow.sdk  # "after Airflow is imported"
path = sys.argv[1]
def parse():
    spec = importlib.util.spec_from_file_location(f"dag_{uuid.uuid4().hex}", path)
    module = importlib.util.module_from_spec(spec)
    started = time.perf_counter()
    spec.loader.exec_module(module)
    return time.perf_counter() - started
cold = parse()
warm = [parse() for _ in range(int(sys.argv[2]))]
print(cold, statistics.median(warm))
"""


def measure(path: Path, airflow_home: str) -> tuple[float, float]:
    env = {"PYTHONPATH": str(DAGS), "AIRFLOW_HOME": airflow_home, "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path), str(REPEAT)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        env=env,
    )
    cold, warm = (float(x) for x in out.stdout.split()[-2:])
    return cold, warm


def main() -> int:
    print(f"{'DAG file':40} {'cold s':>8} {'warm s':>8} {'warm/budget':>12}")
    over = []
    with tempfile.TemporaryDirectory() as airflow_home:
        for path in sorted(DAGS.glob("*.py")):
            cold, warm = measure(path, airflow_home)
            print(f"{path.name:40} {cold:8.3f} {warm:8.3f} {warm / BUDGET_S:12.2f}")
            if warm > BUDGET_S:
                over.append(path.name)
    print(f"budget {BUDGET_S}s per file (warm, median of {REPEAT}); over budget: {over or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
