"""Command line of the DAG checks; exits 1 on any finding, 2 on a usage error."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path

from ml_platform.checks.parse_time import BUDGET_ENV, budget_from_env

DEFAULT_PATHS = [str(Path(__file__).resolve().parents[2])]  # the dags/ folder


def _isolate_airflow(home: str) -> None:
    """A throwaway AIRFLOW_HOME: no local settings or config of this machine changes a result.

    In particular no airflow_local_settings: the checks apply the platform's rules
    themselves, with codes and lines, instead of meeting them as import errors.
    """
    os.environ["AIRFLOW_HOME"] = home
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "CRITICAL")
    warnings.simplefilter("ignore")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="check-dags",
        description="Check DAG files (imports, parse time, platform policies, pod placement), "
        "model specs and team trainer images.",
    )
    parser.add_argument(
        "paths", nargs="*", help="DAG files, model specs or folders (default: dags/)"
    )
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        "--parse-budget",
        type=float,
        metavar="SECONDS",
        help=f"warm parse CPU time allowed per file (default: ${BUDGET_ENV}, else 0.2)",
    )
    budget.add_argument("--no-parse-time", action="store_true", help="skip the parse timing")
    parser.add_argument(
        "--config",
        type=Path,
        action="append",
        metavar="FILE",
        help="check against this platform document instead of every stack's (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.parse_budget is not None and args.parse_budget <= 0:
        parser.error(f"--parse-budget {args.parse_budget}: the budget must be above 0 seconds")
    try:
        parse_budget = None if args.no_parse_time else (args.parse_budget or budget_from_env())
    except ValueError as exc:
        parser.error(str(exc))

    with tempfile.TemporaryDirectory(prefix="check-dags-airflow-") as home:
        _isolate_airflow(home)
        from ml_platform.checks.runner import check_files
        from ml_platform.checks.stacks import (
            documents_from_files,
            stack_documents,
            test_valued_stacks,
            unchecked_stacks,
        )

        try:
            stacks = documents_from_files(args.config) if args.config else stack_documents()
            unchecked = {} if args.config else unchecked_stacks()
            test_valued = {} if args.config else test_valued_stacks()
            findings = check_files(args.paths or DEFAULT_PATHS, stacks, parse_budget)
        except (FileNotFoundError, ValueError) as exc:
            print(f"check-dags: {exc}", file=sys.stderr)
            return 2
    for stack, keys in test_valued.items():
        print(
            f"check-dags: stack {stack} checked with test values for {', '.join(keys)} "
            "(set per organisation, not in its stack file)",
            file=sys.stderr,
        )
    for stack, why in unchecked.items():
        print(f"check-dags: stack {stack} not checked: {why}", file=sys.stderr)
    for finding in findings:
        print(finding)
    files = len({f.path for f in findings})
    where = ", ".join(stacks)
    if findings:
        print(f"check-dags: {len(findings)} finding(s) in {files} file(s) (stacks: {where})")
        return 1
    timing = f"parse budget {parse_budget:.2f}s" if parse_budget else "parse time not checked"
    print(f"check-dags: no findings (stacks: {where}; {timing})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
