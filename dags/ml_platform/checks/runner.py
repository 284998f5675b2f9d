"""Run every DAG check on a set of files and return the findings, sorted by place.

Each file is parsed by Airflow's own DagBag once per stack, with that stack's platform
document as ML_PLATFORM_CONFIG, because the platform library turns "a GPU" into the pools
of the stack at hand: a pod is checked as that stack would receive it. Source rules and DAG
rules are stack-independent and read once. The parse timer works in a process of its own,
started first so that it loads Airflow while the DagBags are parsed; it measures after them,
alone, since another process on the CPU would inflate its figures. Model specs and team
trainer images under the folders checked are read as files (spec_rules), without Airflow.
"""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ml_contract import SPEC_SUFFIX
from ml_platform.capacity import concurrency, over_capacity
from ml_platform.checks.parse_time import ParseTimer, slow_parse_findings
from ml_platform.checks.source_rules import source_findings
from ml_platform.checks.spec_rules import spec_findings
from ml_platform.checks.stacks import stack_documents
from ml_platform.dag_rules import dag_violations
from ml_platform.deployer_rules import dag_team, deployer_violations
from ml_platform.pod_rules import pod_violations
from ml_platform.policies import schedule_gpu_pod
from ml_platform.pools import NoPoolError, check_schedulable
from ml_platform.settings import CONFIG_ENV, RUNTIME_ENV, PlatformConfig, platform_config
from ml_platform.source_lines import dag_line, parse_file, task_line
from ml_platform.team_identities import identity_violations
from ml_platform.violations import Finding, Violation

_TRACEBACK_LINE = re.compile(r'File "(?P<path>[^"]+)", line (?P<line>\d+)')
# Airflow keeps the last 2 frames of an import error; the DAG file's may be further up.
TRACEBACK_DEPTH_ENV = "AIRFLOW__CORE__DAGBAG_IMPORT_ERROR_TRACEBACK_DEPTH"
_POD_NAME = re.compile(r"\bpod [a-z0-9][a-z0-9.-]*(: | )")  # random suffix: noise in messages
NO_POOL_FIX = (
    "ask for a GPU count and type that a pool of every stack offers (the message lists them)"
)


def dag_files(paths: list[str]) -> list[str]:
    """The DAG files under `paths` as the DAG processor finds them (.airflowignore honoured)."""
    from airflow.utils.file import list_py_file_paths

    files: list[str] = []
    for path in paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"{path}: no such file or directory")
        files += list_py_file_paths(str(Path(path).resolve()), safe_mode=True)
    # A spec named on the command line is checked as a spec, not parsed as a DAG.
    return sorted(f for f in dict.fromkeys(files) if not f.endswith(SPEC_SUFFIX))


def display_path(path: str) -> str:
    """The path relative to the working directory when it is below it (clickable in editors)."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def platform_document(document: dict[str, Any]) -> Iterator[PlatformConfig]:
    """ML_PLATFORM_CONFIG set to one stack's document while DAG files are parsed, as that
    stack's cluster parses them (not the local runtime, which uses no team identities)."""
    with _environment(**{CONFIG_ENV: json.dumps(document), RUNTIME_ENV: "kubernetes"}):
        yield platform_config()


_FINDING = re.compile(r"\S+:\d+: MLP\d{3} .*")


def import_error_finding(path: str, shown: str, traceback: str, stack: str | None) -> Finding:
    """The one finding for a file the DagBag could not import: MLP001 at the file's deepest
    line in the traceback, MLP301 for a pod no pool can run."""
    lines = [m for m in _TRACEBACK_LINE.finditer(traceback) if m["path"] == path]
    line = int(lines[-1]["line"]) if lines else 1
    error = next((ln.strip() for ln in reversed(traceback.splitlines()) if ln.strip()), "")
    if "NoPoolError" in error:
        reason = error.split(": ", 1)[-1]
        return Violation("MLP301", f"stack {stack!r}: {reason}", NO_POOL_FIX).at(shown, line)
    return Violation(
        "MLP001",
        f"the file does not import: {error}",
        f"fix that line; the whole traceback: PYTHONPATH=dags .venv/bin/python {shown}",
    ).at(shown, line)


def import_error_line(path: str, traceback: str) -> str:
    """One line for an import error: the policy's own `path:line: CODE` finding when a
    cluster policy refused the file, else the MLP001/MLP301 finding."""
    last = next((ln.strip() for ln in reversed(traceback.splitlines()) if ln.strip()), "")
    refused = _FINDING.search(last)
    if refused:
        return refused.group(0)
    return str(import_error_finding(path, display_path(path), traceback, None))


def _checked_registry(config: PlatformConfig) -> str | None:
    """The registry images must come from, or None on a stack whose file leaves the registry
    to the organisation: its test value is nobody's registry, so MLP205 is not asked there."""
    from ml_platform.checks.stacks import ORG_TEST_VALUES

    registry = config.images.registry
    return None if registry == ORG_TEST_VALUES["images.registry"] else registry


def _pod_findings(
    dag: Any, tree: ast.Module | None, shown: str, stack: str, config: PlatformConfig
) -> list[Finding]:
    from ml_platform import inspection

    dag_at = dag_line(tree, dag.dag_id) if tree else 1
    findings = []
    for task in dag.tasks:
        if not inspection.is_container_task(task):
            continue
        line = task_line(tree, task.task_id, dag_at) if tree else dag_at
        where = f"task {task.task_id!r}"
        try:
            operator = inspection.concrete_operator(dag, task.task_id)
            pod = inspection.build_pod(operator)
        except Exception as exc:
            # inspection's ValueError says why; anything else is a surprise worth its type.
            reason = (
                str(exc)
                if isinstance(exc, ValueError)
                else f"its pod cannot be built offline ({type(exc).__name__}: {exc})"
            )
            findings.append(
                Violation(
                    "MLP302",
                    f"{where}: {reason}",
                    "expand only `arguments` from run-time values; pass resources, volumes "
                    "and images as literals so the pod can be checked before it runs",
                ).at(shown, line)
            )
            continue
        violations = pod_violations(
            pod,
            where=where,
            registry=_checked_registry(config),
            base_container=operator.base_container_name,
        )
        findings += [v.at(shown, line) for v in violations]
        deployer = deployer_violations(
            pod,
            base_container=operator.base_container_name,
            team=dag_team(dag.fileloc),
            where=where,
            config=config,
        )
        findings += [v.at(shown, line) for v in deployer]
        identity = identity_violations(pod, config, where, team=dag_team(dag.fileloc))
        findings += [v.at(shown, line) for v in identity]
        try:
            schedule_gpu_pod(pod, config)  # what pod_mutation_hook does on that stack
            check_schedulable(pod, config)
        except NoPoolError as exc:
            reason = _POD_NAME.sub("", str(exc), count=1)
            fix = exc.fix or NO_POOL_FIX
            findings.append(Violation("MLP301", f"{where}: {reason}", fix).at(shown, line))
            continue
        over = over_capacity(pod, concurrency(dag, task, config), config)
        if over:
            message, fits = over
            findings.append(
                Violation(
                    "MLP303", f"stack {stack!r}: {where} runs {message}", _capacity_fix(fits)
                ).at(shown, line)
            )
    return findings


def _capacity_fix(fits: int) -> str:
    if fits < 1:
        return "ask for no more GPUs per pod than the stack's training GPU quota"
    return (
        f"set max_active_tis_per_dagrun={fits} on the mapped task (max_parallel={fits} with the "
        "platform's factories), or ask for less per pod so more share a node"
    )


def check_file(path: str, stacks: dict[str, dict[str, Any]]) -> tuple[list[Finding], bool]:
    """Findings of one DAG file, and whether it imported under every stack."""
    from airflow.dag_processing.dagbag import DagBag

    shown = display_path(path)
    tree = parse_file(path)
    findings = source_findings(shown, tree) if tree else []
    imported = True
    for index, (stack, document) in enumerate(stacks.items()):
        with platform_document(document) as config, _environment(**{TRACEBACK_DEPTH_ENV: "100"}):
            bag = DagBag(dag_folder=path, safe_mode=False)
            for traceback in bag.import_errors.values():
                findings.append(import_error_finding(path, shown, traceback, stack))
                imported = False
            for dag in bag.dags.values():
                if index == 0:  # owner, tags and retries do not depend on the stack
                    line = dag_line(tree, dag.dag_id) if tree else 1
                    findings += [v.at(shown, line) for v in dag_violations(dag)]
                findings += _pod_findings(dag, tree, shown, stack, config)
    return findings, imported


def check_files(
    paths: list[str],
    stacks: dict[str, dict[str, Any]] | None = None,
    parse_budget_s: float | None = None,
) -> list[Finding]:
    """Every finding for the DAG files, model specs and team images under `paths`; parse
    time only with a budget."""
    stacks = stacks or stack_documents()
    files = dag_files(paths)
    timer = None
    if parse_budget_s is not None and files:
        first_stack = next(iter(stacks.values()))
        with platform_document(first_stack):  # the worker inherits the environment
            timer = ParseTimer(files, parse_budget_s)
    findings: set[Finding] = set(spec_findings(paths))
    imported = []
    for path in files:
        file_findings, ok = check_file(path, stacks)
        findings.update(file_findings)
        if ok:
            imported.append(path)
    if timer is not None:
        timings = {p: t for p, t in timer.results().items() if p in imported}
        shown = {p: display_path(p) for p in timings}
        findings.update(slow_parse_findings(timings, parse_budget_s, shown))
    return sorted(findings)
