"""python -m ml_platform.scaffold --team TEAM --name NAME [--trainer] (`make new-dag`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ml_platform.scaffold.new_dag import REPO_ROOT, main


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="new-dag", description=__doc__)
    parser.add_argument("--team", default="", help="the team's folder under dags/teams/")
    parser.add_argument("--name", default="", help="the DAG's file name (without .py)")
    parser.add_argument(
        "--trainer",
        action="store_true",
        help="train with the team's own image: images/<name>-trainer/ (Dockerfile + module)",
    )
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="the repository root")
    args = parser.parse_args(argv)
    return main(args.team, args.name, args.trainer, args.root)


if __name__ == "__main__":
    sys.exit(cli())
