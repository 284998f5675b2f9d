"""Can the kind e2e tests run here? One line naming the first thing missing, or None.

Checked in order, stopping at the first gap: the tools on PATH (docker, kind, kubectl, helm,
pulumi), a Docker engine that answers, the kind stack's cluster, and the kind stack deployed
(its outputs, read from the local Pulumi state `make deploy ENV=kind` writes). Nothing is
assumed: each check runs the real tool, with a time limit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from infra.kind import kind_platform

CHECK_TIMEOUT_S = 60
STACK_OUTPUT_TIMEOUT_S = 180


@dataclass(frozen=True)
class Preflight:
    """`blocker` is None when the stack is up; then `outputs` holds its stack outputs."""

    blocker: str | None
    outputs: dict[str, Any] = field(default_factory=dict)


def missing_tools(path: str) -> list[str]:
    return [tool for tool in kind_platform.TOOLS if shutil.which(tool, path=path) is None]


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "no output"


def _run(command: list[str], environ: Mapping[str, str], timeout_s: int) -> tuple[int, str, str]:
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=dict(environ),
            timeout=timeout_s,
            cwd=kind_platform.REPO_ROOT,
        )
    except subprocess.TimeoutExpired:
        return 124, "", f"no answer within {timeout_s}s"
    except OSError as exc:
        return 127, "", str(exc)
    return done.returncode, done.stdout, done.stderr


def check(environ: Mapping[str, str] | None = None) -> Preflight:
    environ = os.environ if environ is None else environ
    path = environ.get("PATH", "")
    missing = missing_tools(path)
    if missing:
        return Preflight(
            f"the kind e2e tests need {', '.join(kind_platform.TOOLS)}; "
            f"not on PATH: {', '.join(missing)}"
        )

    def tool(name: str) -> str:
        return shutil.which(name, path=path) or name

    code, _, err = _run(
        [tool("docker"), "info", "--format", "{{.ServerVersion}}"], environ, CHECK_TIMEOUT_S
    )
    if code:
        return Preflight(f"docker: no engine answers (docker info: {_first_line(err)})")

    name = kind_platform.cluster_name()
    code, out, err = _run([tool("kind"), "get", "clusters"], environ, CHECK_TIMEOUT_S)
    if code:
        return Preflight(f"kind get clusters failed: {_first_line(err)}")
    if name not in out.split():
        return Preflight(f"kind cluster {name!r} is not up (make kind-up)")

    pulumi_env = kind_platform.pulumi_env(environ)
    code, out, err = _run(
        [
            tool("pulumi"),
            "stack",
            "output",
            "--json",
            "--show-secrets",
            "--stack",
            kind_platform.STACK,
            "--cwd",
            str(kind_platform.INFRA_DIR),
            "--non-interactive",
        ],
        {**environ, **pulumi_env},
        STACK_OUTPUT_TIMEOUT_S,
    )
    if code:
        return Preflight(
            f"pulumi stack {kind_platform.STACK!r} is not deployed in "
            f"{pulumi_env['PULUMI_BACKEND_URL']} (make deploy ENV={kind_platform.STACK}): "
            f"{_first_line(err)}"
        )
    try:
        outputs = json.loads(out or "{}")
    except json.JSONDecodeError:
        return Preflight(f"pulumi stack output printed no JSON: {_first_line(out)}")
    if not outputs:
        return Preflight(
            f"pulumi stack {kind_platform.STACK!r} has no outputs: its last `pulumi up` did "
            f"not finish (make deploy ENV={kind_platform.STACK})"
        )
    return Preflight(None, outputs)


@cache
def result() -> Preflight:
    """`check()` of this process, once (the conftest and the tests share it)."""
    return check()
