"""`make check-dags`: what the platform checks before review (DAG files, model specs, team
trainer images), with file and line.

    PYTHONPATH=dags python -m ml_platform.checks [--parse-budget S] [--no-parse-time] [PATH...]

Every finding prints as `path:line: CODE message (what to change)`; the codes are listed in
ml_platform.violations.RULES and explained in docs/ml-teams.md. Nothing here imports Airflow
at package import: the CLI must point AIRFLOW_HOME somewhere first.
"""
