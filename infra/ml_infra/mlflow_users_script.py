"""Create the platform's MLflow logins, or set their passwords: run by the mlflow-users Job.

MLflow's basic-auth app has users and permissions but nothing declarative, so this script
makes the server's users match a file: {"users": {login: password}}. It runs as the MLflow
admin (MLFLOW_TRACKING_USERNAME/PASSWORD), is idempotent, and prints one line per login
(never a password). Standard library only: it runs on a plain Python image.

Permissions are not set here: with `default_permission = NO_PERMISSIONS` a login owns (MANAGE)
the experiments and registered models it creates and sees nothing else; the deployer grants a
model's serving login READ on that model alone.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

CREATE_USER = "/api/2.0/mlflow/users/create"
UPDATE_PASSWORD = "/api/2.0/mlflow/users/update-password"
HEALTH = "/health"


class SetupError(RuntimeError):
    """A one-line reason the logins could not be made."""


def _call(base: str, auth: str, method: str, path: str, body: dict | None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        base.rstrip("/") + path,
        data=data,
        method=method,
        headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode() or "{}"
            return response.status, json.loads(text) if text.startswith("{") else {}
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
        try:
            return exc.code, json.loads(text)
        except json.JSONDecodeError:
            return exc.code, {"message": text[:200]}


def wait_healthy(base: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base.rstrip("/") + HEALTH, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(2)
    raise SetupError(f"MLflow at {base} not healthy after {timeout_s:.0f}s ({last})")


def ensure_user(base: str, auth: str, user: str, password: str) -> str:
    """'created' or 'password set'; raises SetupError naming the login otherwise."""
    status, payload = _call(
        base, auth, "POST", CREATE_USER, {"username": user, "password": password}
    )
    if status == 200:
        return "created"
    if payload.get("error_code") != "RESOURCE_ALREADY_EXISTS":
        raise SetupError(f"login {user!r}: create failed ({status}: {payload.get('message')})")
    status, payload = _call(
        base, auth, "PATCH", UPDATE_PASSWORD, {"username": user, "password": password}
    )
    if status != 200:
        raise SetupError(f"login {user!r}: password not set ({status}: {payload.get('message')})")
    return "password set"


def read_users(path: Path) -> dict[str, str]:
    try:
        users = json.loads(path.read_text())["users"]
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise SetupError(f"{path}: not a users file ({exc})") from None
    if not isinstance(users, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k and v for k, v in users.items()
    ):
        raise SetupError(f"{path}: users must map each login to a non-empty password")
    return users


def main() -> int:
    try:
        base = os.environ["MLFLOW_TRACKING_URI"]
        admin = os.environ["MLFLOW_TRACKING_USERNAME"]
        admin_password = os.environ["MLFLOW_TRACKING_PASSWORD"]
        users = read_users(Path(os.environ["MLFLOW_USERS_FILE"]))
        wait_healthy(base, float(os.environ.get("MLFLOW_USERS_WAIT_S", "300")))
        auth = base64.b64encode(f"{admin}:{admin_password}".encode()).decode()
        for user, password in users.items():
            print(f"mlflow login {user}: {ensure_user(base, auth, user, password)}", flush=True)
    except KeyError as exc:
        print(f"mlflow-users: environment variable {exc.args[0]} is not set", file=sys.stderr)
        return 2
    except SetupError as exc:
        print(f"mlflow-users: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
