"""How much CPU each DAG file takes to parse, warm, and which top-level statements cost most.

Airflow's DAG processor imports the `airflow.*` modules a file names once, in its own process
(`[dag_processor] parsing_pre_import_modules`), then forks a child per parse; everything else
the file imports is imported again in every child. This measures the same way: a worker
process pre-imports Airflow, the platform library (every DAG uses it; its cost is the
platform's, not the DAG's) and each file's `airflow.*` imports, then forks one child per file
that executes the file statement by statement under a clock. A top-level `import pandas`
therefore counts, as it does in the DAG processor, and is named in the finding.

The clock is CPU time (user + system) of the parsing process and of any process it waits for,
not wall time: what makes a DAG file slow to parse is its own work (heavy imports, top-level
computation), and that costs the same CPU however busy the machine is, while wall time grows
with every other process on it. Waiting (a sleep, a network call) costs no CPU and is not
counted; the source rules keep Variable and Connection reads off the top level (MLP106).

    python -m ml_platform.checks.parse_time --budget 0.2 --out RESULTS.json FILE...
"""

from __future__ import annotations
import __future__

import argparse
import ast
import contextlib
import gc
import importlib
import importlib.util
import json
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml_platform.violations import Finding, Violation

BUDGET_ENV = "ML_PLATFORM_PARSE_BUDGET_S"
DEFAULT_BUDGET_S = 0.2
# The platform library as DAGs use it, with the sensors wait_for_partition imports lazily.
PLATFORM_PRELOAD = (
    "airflow.sdk",
    "ml_platform.container",
    "ml_platform.sensors",
    "ml_platform.gcs_partition",
    "ml_platform.sweep",
    "ml_platform.trainer_params",
    "ml_platform.training_dag",
    "ml_platform.model_specs",
    "ml_contract",
    "airflow.providers.amazon.aws.sensors.s3",
    "airflow.providers.standard.sensors.filesystem",
)
# Wall time, the one bound that is not CPU: a parse that waits this long (a sleep, a network
# call that hangs) is reported whatever it cost; Airflow's own dagbag_import_timeout is 30s.
CHILD_TIMEOUT_S = 60.0
# A file over budget, but by less than NOISE_FACTOR, is measured again and the cheapest run
# decides: noise (caches and memory bandwidth shared with other processes) only ever adds.
REPEATS_WHEN_SLOW = 3
NOISE_FACTOR = 3
SLOWEST_SHOWN = 3


@dataclass
class ParseTiming:
    path: str
    seconds: float  # CPU seconds
    # (line, CPU seconds, first line of the statement's source), slowest first
    statements: list[tuple[int, float, str]] = field(default_factory=list)
    error: str | None = None
    timed_out: bool = False  # killed after CHILD_TIMEOUT_S of wall time


def budget_from_env() -> float:
    value = os.environ.get(BUDGET_ENV, "").strip()
    if not value:
        return DEFAULT_BUDGET_S
    try:
        budget = float(value)
    except ValueError:
        raise ValueError(f"{BUDGET_ENV}={value!r}: expected seconds, e.g. 0.2") from None
    if budget <= 0:
        raise ValueError(f"{BUDGET_ENV}={value!r}: the budget must be above 0 seconds")
    return budget


# --- the worker: runs in its own interpreter ---------------------------------------------


def _future_flags(tree: ast.Module) -> int:
    flags = 0
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            for alias in node.names:
                flags |= getattr(__future__, alias.name).compiler_flag
    return flags


def cpu_seconds() -> float:
    """CPU time of this process (all its threads) and of the children it has waited for."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _timed_exec(path: str) -> dict[str, Any]:
    """Execute the file one top-level statement at a time; CPU seconds per statement."""
    source = Path(path).read_text()
    tree = ast.parse(source, path)
    flags = _future_flags(tree)
    name = f"parse_time_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    statements = []
    for stmt in tree.body:
        code = compile(ast.Module([stmt], []), path, "exec", flags=flags, dont_inherit=True)
        started = cpu_seconds()
        exec(code, module.__dict__)
        elapsed = cpu_seconds() - started
        text = (ast.get_source_segment(source, stmt) or "").splitlines()[0][:60]
        statements.append((stmt.lineno, elapsed, text))
    return {"seconds": sum(s[1] for s in statements), "statements": statements}


def _measure_in_child(path: str) -> dict[str, Any]:
    """One parse in a forked child, as the DAG processor does it."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: parse, report, leave without running the parent's cleanup
        os.close(read_end)
        try:
            result = _timed_exec(path)
        except BaseException as exc:  # the import check reports it
            result = {"error": f"{type(exc).__name__}: {exc}"}
        with os.fdopen(write_end, "w") as out:
            json.dump(result, out)
        os._exit(0)
    os.close(write_end)
    chunks = []
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    with os.fdopen(read_end) as pipe:
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([pipe], [], [], max(left, 0))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return {"seconds": CHILD_TIMEOUT_S, "statements": [], "timed_out": True}
            chunk = pipe.read()
            if not chunk:
                break
            chunks.append(chunk)
    os.waitpid(pid, 0)
    return json.loads("".join(chunks) or '{"error": "the parse process died"}')


def _preload(paths: list[str]) -> None:
    from airflow.utils.file import iter_airflow_imports

    modules = list(PLATFORM_PRELOAD)
    for path in paths:
        modules += list(iter_airflow_imports(path))
    for module in dict.fromkeys(modules):
        # As in Airflow: a module that fails here fails again, and is reported, in the parse.
        with contextlib.suppress(Exception):
            importlib.import_module(module)


def measure(paths: list[str], budget_s: float) -> dict[str, dict[str, Any]]:
    """path -> {"seconds", "statements"} or {"error"}; slow files are measured again."""
    results = {}
    for path in paths:
        runs = [_measure_in_child(path)]
        if "error" not in runs[0] and budget_s < runs[0]["seconds"] < NOISE_FACTOR * budget_s:
            runs += [_measure_in_child(path) for _ in range(REPEATS_WHEN_SLOW - 1)]
            runs = [r for r in runs if "error" not in r] or runs
        results[path] = min(runs, key=lambda r: r.get("seconds", 0.0))
    return results


def worker_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="parse_time", description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args(argv)
    # The DAG processor's sys.path has no working directory; lookups there cost time.
    sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
    _preload(args.paths)
    # As the DAG processor does before its parsing loop: the children's garbage collections
    # would otherwise write to (and copy) every page of the preloaded heap.
    gc.freeze()
    # The caller says when: after its own DagBags, which would share caches and cores.
    sys.stdin.readline()
    args.out.write_text(json.dumps(measure(args.paths, args.budget)))
    return 0


# --- the client: the checks start the worker and read its results -------------------------


class ParseTimer:
    """Starts the worker, which loads Airflow while the other checks run; `results()` then
    lets it measure, alone, and waits for it."""

    def __init__(self, paths: list[str], budget_s: float, timeout_s: float = 600) -> None:
        self.budget_s = budget_s
        self.timeout_s = timeout_s
        self._dir = tempfile.TemporaryDirectory(prefix="parse-time-")
        self._out = Path(self._dir.name) / "results.json"
        library_root = str(Path(__file__).resolve().parents[2])
        python_path = [library_root, os.environ.get("PYTHONPATH")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, python_path))}
        command = [sys.executable, "-m", "ml_platform.checks.parse_time"]
        command += ["--budget", str(budget_s), "--out", str(self._out), *paths]
        self._process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def results(self) -> dict[str, ParseTiming]:
        try:
            _, stderr = self._process.communicate("go\n", timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.communicate()
            raise RuntimeError(f"parse timing took over {self.timeout_s:.0f}s") from None
        try:
            if self._process.returncode != 0 or not self._out.exists():
                tail = "\n".join(stderr.strip().splitlines()[-5:])
                raise RuntimeError(f"parse timing failed ({self._process.returncode}): {tail}")
            raw = json.loads(self._out.read_text())
        finally:
            self._dir.cleanup()
        timings = {}
        for path, result in raw.items():
            statements = sorted(
                (tuple(s) for s in result.get("statements", [])), key=lambda s: -s[1]
            )
            timings[path] = ParseTiming(
                path,
                result.get("seconds", 0.0),
                list(statements),
                result.get("error"),
                bool(result.get("timed_out")),
            )
        return timings


def slow_parse_findings(
    timings: dict[str, ParseTiming], budget_s: float, display: dict[str, str]
) -> list[Finding]:
    """MLP002 for each file over budget, at its slowest top-level statement."""
    findings = []
    for path, timing in timings.items():
        if timing.error or (timing.seconds <= budget_s and not timing.timed_out):
            continue
        slowest = timing.statements[:SLOWEST_SHOWN]
        named = ", ".join(f"line {line} `{text}` {s:.2f}s" for line, s, text in slowest)
        line = slowest[0][0] if slowest else 1
        measured = (
            f"did not finish parsing within {CHILD_TIMEOUT_S:.0f}s"
            if timing.timed_out
            else f"parses in {timing.seconds:.2f}s of CPU warm, over the {budget_s:.2f}s budget"
        )
        findings.append(
            Violation(
                "MLP002",
                f"{measured}; slowest top-level statements: "
                f"{named or 'unknown (the parse timed out)'}",
                "import heavy libraries inside the task functions that use them and keep "
                "I/O out of module level (budget: --parse-budget or "
                f"{BUDGET_ENV})",
            ).at(display.get(path, path), line)
        )
    return findings


if __name__ == "__main__":
    sys.exit(worker_main())
