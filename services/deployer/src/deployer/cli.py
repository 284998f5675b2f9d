"""`deployer [--xcom-path PATH] <deploy|rollback|status|serve> ...`

deploy, rollback and status write their result as JSON to the XCom path and log progress to
stdout. A failure exits 1 with exactly one line on stderr,
`deployer <command>: failed at <step>: <why>`: everything else that would reach stderr
(MLflow's own messages, warnings) is sent to stdout while a command runs. `status` exits 3
when the champion and what serves disagree (its XCom and line are written all the same).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr
from pathlib import Path
from typing import Any, NoReturn

from deployer.errors import StepFailed, one_line
from ml_dependencies import BadBound, bounded_dependencies, unreachable
from ml_dependencies import bound as dependency_bound

log = logging.getLogger("deployer")

XCOM_ENV = "TRAINER_XCOM_PATH"  # the platform's local runtime sets it for every image
DEFAULT_XCOM_PATH = "/airflow/xcom/return.json"  # where KubernetesPodOperator reads it
TARGET_ENV = "DEPLOYER_TARGET"
TARGETS = ("local", "kubernetes")
LOCK_TIMEOUT_S = 300.0
# `status` when the champion alias and what serves disagree (1 is a failure, 2 a usage error):
# a monitoring job or a shell script can tell the two apart.
OUT_OF_SYNC_EXIT = 3
# Passed on to the model server pods: where MLflow and its artifact store are.
POD_ENV_PASSTHROUGH = ("MLFLOW_TRACKING_URI", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL")


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


class _OneLineParser(argparse.ArgumentParser):
    """Usage mistakes as one line on stderr (exit status 2), like every other failure."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="deployer", description="Deploy MLflow models: registry aliases + a model server."
    )
    parser.add_argument(
        "--xcom-path",
        type=Path,
        default=Path(_env(XCOM_ENV, DEFAULT_XCOM_PATH)),
        help=f"where the result JSON goes (default: ${XCOM_ENV}, else {DEFAULT_XCOM_PATH})",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    target = _OneLineParser(add_help=False)
    target.add_argument(
        "--target",
        choices=TARGETS,
        default=_env(TARGET_ENV, "kubernetes"),
        help=f"where the model server runs (default: ${TARGET_ENV}, else kubernetes)",
    )
    target.add_argument("--namespace", default=_env("DEPLOYER_NAMESPACE"), help="kubernetes")
    target.add_argument("--image", default=_env("DEPLOYER_IMAGE"), help="kubernetes: server image")
    target.add_argument(
        "--image-pull-policy", default=_env("DEPLOYER_IMAGE_PULL_POLICY", "IfNotPresent")
    )
    target.add_argument("--service-account", default=_env("DEPLOYER_SERVICE_ACCOUNT"))
    target.add_argument(
        "--env-secret",
        default=_env("DEPLOYER_ENV_SECRET"),
        help="kubernetes: Secret whose keys become the server's env (storage credentials)",
    )
    target.add_argument("--replicas", type=int, default=_env("DEPLOYER_REPLICAS", "1"))

    deploy = commands.add_parser("deploy", parents=[target], help="register, roll out, promote")
    deploy.add_argument("--run-id", required=True)
    deploy.add_argument("--model-name", required=True)
    deploy.add_argument("--artifact-path", default="model")
    deploy.add_argument("--timeout", type=float, default=120.0, help="readiness, in seconds")

    rollback = commands.add_parser("rollback", parents=[target], help="previous champion back")
    rollback.add_argument("--model-name", required=True)
    rollback.add_argument("--timeout", type=float, default=120.0, help="readiness, in seconds")

    status = commands.add_parser("status", parents=[target], help="champion vs. what serves")
    status.add_argument("--model-name", required=True)

    serve = commands.add_parser("serve", help="run the model server (the image's other role)")
    serve.add_argument("--model-uri", required=True, help="e.g. models:/churn/3")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--threads",
        type=int,
        default=_env("OMP_NUM_THREADS", "1"),
        help="compute threads of the model's math library (default: $OMP_NUM_THREADS, else 1)",
    )
    return parser


def _make_target(args: argparse.Namespace) -> Any:
    if args.target == "local":
        from deployer.targets.local import FRONT_PORT_ENV, LocalTarget, state_root

        front_port = _env(FRONT_PORT_ENV)
        return LocalTarget(state_root(), args.model_name, int(front_port) if front_port else None)

    from deployer.manifests import ServingSpec
    from deployer.targets.kubernetes import KubernetesTarget, kubernetes_apis

    for flag, value, env in (
        ("--namespace", args.namespace, "DEPLOYER_NAMESPACE"),
        ("--image", args.image, "DEPLOYER_IMAGE"),
    ):
        if not value:
            raise StepFailed("config", f"the kubernetes target needs {flag} (or {env})")
    if args.replicas < 1:
        raise StepFailed("config", f"--replicas must be at least 1, got {args.replicas}")
    spec = ServingSpec(
        namespace=args.namespace,
        image=args.image,
        image_pull_policy=args.image_pull_policy,
        replicas=args.replicas,
        env={name: os.environ[name] for name in POD_ENV_PASSTHROUGH if os.environ.get(name)},
        env_secret=args.env_secret,
        service_account=args.service_account,
    )
    try:
        apps, core = kubernetes_apis()
    except Exception as exc:
        raise StepFailed("config", f"no Kubernetes API access: {one_line(exc)}") from None
    return KubernetesTarget(apps, core, spec, args.model_name)


def _run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """The command's XCom result and its one human line."""
    from deployer import workflow
    from deployer.registry import Registry

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        raise StepFailed("config", "MLFLOW_TRACKING_URI is not set")
    try:
        dependency_bound()
    except BadBound as exc:
        raise StepFailed("config", str(exc)) from None
    target = _make_target(args)
    registry = Registry()
    with bounded_dependencies(), target.exclusive(LOCK_TIMEOUT_S):
        if args.command == "deploy":
            result = workflow.deploy(
                registry,
                target,
                model_name=args.model_name,
                run_id=args.run_id,
                artifact_path=args.artifact_path,
                timeout_s=args.timeout,
            )
            previous = result["previous_version"]
            was = f"v{previous}" if previous else "none"
            line = (
                f"deployed {result['model_name']} v{result['version']} to {result['target']} at "
                f"{result['endpoint']} (previous champion: {was})"
            )
        elif args.command == "rollback":
            result = workflow.rollback(
                registry, target, model_name=args.model_name, timeout_s=args.timeout
            )
            line = (
                f"rolled {result['model_name']} back from v{result['rolled_back_from']} to "
                f"v{result['version']} on {result['target']} at {result['endpoint']}"
            )
        else:
            result = workflow.status(registry, target, model_name=args.model_name)

            def shown(version: str | None) -> str:
                return f"v{version}" if version else "none"

            line = (
                f"{result['model_name']}: champion {shown(result['champion'])}, serving "
                f"{shown(result['serving'])} at {result['endpoint']} ({result['detail']}): "
                + ("in sync" if result["in_sync"] else "OUT OF SYNC")
            )
    return result, line


def _write_xcom(path: Path, result: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result) + "\n")
    except OSError as exc:
        raise StepFailed("xcom", f"cannot write {path}: {exc}") from None


class Terminated(Exception):
    """SIGTERM (Airflow killing the task): raised so a half-done deploy is restored."""


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:
        raise Terminated("terminated by SIGTERM")

    previous: Callable[..., Any] | int | None = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _progress_log_to_stdout() -> Iterator[None]:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        from deployer.server import serve

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        if args.threads < 1:
            _parser().error(f"--threads must be at least 1, got {args.threads}")
        return serve(args.model_uri, args.host, args.port, args.threads)

    errors = sys.stderr
    with _progress_log_to_stdout(), redirect_stderr(sys.stdout):
        try:
            try:  # an unwritable XCom path fails the command before it changes anything
                args.xcom_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StepFailed("xcom", f"cannot create {args.xcom_path.parent}: {exc}") from None
            with _sigterm_raises():
                result, line = _run(args)
            _write_xcom(args.xcom_path, result)
        except StepFailed as failure:
            print(f"deployer {args.command}: {failure}", file=errors, flush=True)
            return 1
        except Terminated as exc:  # stopped before anything needed restoring
            print(f"deployer {args.command}: failed at {args.command}: {exc}", file=errors)
            return 1
        except Exception as exc:  # a bug or an unforeseen error: still one line on stderr
            why = unreachable(exc)
            if why is None:  # a dependency that is down needs no traceback; anything else does
                log.exception("unexpected error")
                why = f"{type(exc).__name__}: {one_line(exc)}"
            print(f"deployer {args.command}: failed at {args.command}: {why}", file=errors)
            return 1
    print(line, flush=True)
    if args.command == "status" and not result["in_sync"]:
        return OUT_OF_SYNC_EXIT
    return 0
