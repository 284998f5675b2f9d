"""What the kind path agrees on, derived from the kind stack and the kind platform document.

`make kind-up`, `make images`, `make deploy ENV=kind`, `make e2e` and `make kind-down` (the
scripts beside this file, infra/deploy.sh and tests/e2e) take every name from here, and this
module takes each from its single source:

- infra/Pulumi.kind.yaml, validated by the infra program's own parser (ml_infra.config): the
  cluster name (the stack's kubeconfig context is `kind-<cluster name>`), the worker nodes of
  each pool, where the checkout is mounted on the nodes, the namespaces;
- ml_infra.endpoints: the in-cluster Services of Airflow, MLflow and the object store;
- dags/ml_platform/platform.kind.json, the kind stack's ML_PLATFORM_CONFIG (a contract test
  keeps it equal to what the stack computes), read by ml_platform.settings: the image
  references the DAGs' pods run;
- services/deployer/Dockerfile's ARG defaults: the CPU base image and torch index every image
  is built with on kind (kind has no GPU; the deployer image is the platform's CPU image);
- dags/teams/*/images/*/Dockerfile (ml_platform.model_specs): the teams' own images, built
  FROM the trainer image just built, under the reference ml_platform.settings gives them.

The kind path's local state (the Pulumi file backend and its passphrase) lives under
.local/kind/, which `make kind-down` removes together with the cluster.

The shell scripts call it as `python infra/kind/kind_platform.py COMMAND` (see `main`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_DIR = REPO_ROOT / "infra"
DAGS_DIR = REPO_ROOT / "dags"
SERVICES_DIR = REPO_ROOT / "services"
CLUSTER_CONFIG = INFRA_DIR / "kind" / "cluster.yaml"
STATE_DIR = REPO_ROOT / ".local" / "kind"
PULUMI_BACKEND_DIR = STATE_DIR / "pulumi"
PASSPHRASE_FILE = STATE_DIR / "pulumi-passphrase"
# What a failed e2e run leaves for inspection (Airflow task logs, the serving poller's log).
E2E_ARTIFACTS_DIR = STATE_DIR / "e2e-artifacts"
STACK = "kind"
CONTEXT_PREFIX = "kind-"
# Everything the kind path drives; the e2e tests skip, naming the missing ones, without them.
TOOLS = ("docker", "kind", "kubectl", "helm", "pulumi")
# The image whose Dockerfile defaults are the CPU build (see the module docstring).
CPU_REFERENCE_IMAGE = "deployer"
CPU_BUILD_ARGS = ("BASE_IMAGE", "TORCH_INDEX_URL")


def importable() -> None:
    """ml_infra (infra/) and ml_platform (dags/) importable, as the Pulumi program and the
    DAG processor see them."""
    for path in (str(INFRA_DIR), str(DAGS_DIR)):
        if path not in sys.path:
            sys.path.insert(0, path)


def project_name() -> str:
    return yaml.safe_load((INFRA_DIR / "Pulumi.yaml").read_text())["name"]


def stack_file(stack: str = STACK) -> Path:
    return INFRA_DIR / f"Pulumi.{stack}.yaml"


@cache
def stack_config(stack: str = STACK) -> Any:
    """The stack's validated config (ml_infra.config.StackConfig), as `pulumi up` reads it."""
    importable()
    from ml_infra.config import parse_stack_config

    project = project_name()
    ours: dict[str, Any] = {}
    others: dict[str, Any] = {}
    raw = yaml.safe_load(stack_file(stack).read_text()) or {}
    for key, value in (raw.get("config") or {}).items():
        namespace, _, name = key.partition(":")
        if namespace == project:
            ours[name] = value
        else:
            others[key] = value
    return parse_stack_config(stack, ours, others)


def kube_context() -> str:
    return stack_config().kind.context


def cluster_name() -> str:
    """The kind cluster's name: kind calls its kubeconfig context `kind-<name>`."""
    context = kube_context()
    name = context.removeprefix(CONTEXT_PREFIX)
    if not context.startswith(CONTEXT_PREFIX) or not name:
        raise ValueError(
            f"{project_name()}:kind.context in {stack_file().name}: {context!r} is not a kind "
            f"context ({CONTEXT_PREFIX}<cluster name>)"
        )
    return name


def pool_nodes() -> dict[str, str]:
    """Worker node -> pool, as the stack's pools list them."""
    return {node: pool.name for pool in stack_config().pools for node in pool.nodes}


def gpu_pool_nodes() -> set[str]:
    return {node for pool in stack_config().gpu_pools for node in pool.nodes}


def cpu_pool_nodes() -> set[str]:
    return {node for pool in stack_config().pools if not pool.has_gpus for node in pool.nodes}


def checkout_node_path() -> str:
    """Where the stack expects this repository on every node (its `airflow.dags.node_path`)."""
    dags = stack_config().airflow.dags
    if dags.source != "local":
        raise ValueError(
            f"the {STACK} stack reads DAGs from {dags.source!r}, not a mounted checkout"
        )
    return dags.node_path


def cluster_document() -> dict[str, Any]:
    return yaml.safe_load(CLUSTER_CONFIG.read_text())


def kind_node_names(document: Mapping[str, Any], name: str) -> list[str]:
    """The node names kind gives a cluster config's nodes: `<name>-<role>`, then
    `<name>-<role>2`, ... per role, in the order of the config (kind's MakeNodeNamer)."""
    counts: dict[str, int] = {}
    names = []
    for node in document.get("nodes") or [{"role": "control-plane"}]:
        role = node.get("role", "control-plane")
        counts[role] = counts.get(role, 0) + 1
        names.append(f"{name}-{role}{counts[role] if counts[role] > 1 else ''}")
    return names


@dataclass(frozen=True)
class Service:
    """An in-cluster Service, e.g. for `kubectl -n NAMESPACE port-forward svc/NAME PORT`."""

    namespace: str
    name: str
    port: int

    @property
    def target(self) -> str:
        return f"svc/{self.name}"


def _service(url: str) -> Service:
    parsed = urlparse(url)
    host = parsed.hostname or ""
    parts = host.split(".")
    if len(parts) < 3 or parts[2] != "svc" or parsed.port is None:
        raise ValueError(f"{url}: not an in-cluster Service URL (<name>.<namespace>.svc...:<port>)")
    return Service(namespace=parts[1], name=parts[0], port=parsed.port)


def services() -> dict[str, Service]:
    """Airflow's API server (REST API and UI), MLflow, and the S3 endpoint of the store."""
    importable()
    from ml_infra.endpoints import airflow_url, mlflow_url, storage_endpoint

    config = stack_config()
    endpoint = storage_endpoint(config)
    if endpoint is None:
        raise ValueError(f"the {STACK} stack has no in-cluster storage endpoint")
    return {
        "airflow": _service(airflow_url(config)),
        "mlflow": _service(mlflow_url(config)),
        "storage": _service(endpoint),
    }


@cache
def platform_document() -> Any:
    """The kind stack's ML_PLATFORM_CONFIG (ml_platform.settings.PlatformConfig)."""
    importable()
    from ml_platform.settings import DEFAULT_CONFIG_FILE, parse_config

    document = parse_config(json.loads(DEFAULT_CONFIG_FILE.read_text()))
    if document.environment != STACK:
        raise ValueError(f"{DEFAULT_CONFIG_FILE} describes {document.environment!r}, not {STACK!r}")
    return document


def image_refs() -> dict[str, str]:
    """Platform image -> the reference its pods run (what `make images` tags and loads)."""
    images = platform_document().images
    return {image: images.ref(image) for image in sorted(images.names)}


# Named build contexts a platform image's Dockerfile copies from (`COPY --from=<name>`): the
# trainer installs the model-spec package, which lives with the DAGs that parse specs too, and
# both services install the dependency-timeout package they share.
DEPENDENCIES_PACKAGE = SERVICES_DIR / "ml_dependencies"
NAMED_CONTEXTS: dict[str, dict[str, Path]] = {
    "trainer": {"contract": DAGS_DIR / "ml_contract", "dependencies": DEPENDENCIES_PACKAGE},
    "deployer": {"dependencies": DEPENDENCIES_PACKAGE},
}


@dataclass(frozen=True)
class ImageBuild:
    """One image `make images` builds: its name, reference, build context and build args."""

    name: str
    ref: str
    context: Path
    build_args: dict[str, str]
    named_contexts: dict[str, Path] = field(default_factory=dict)

    def line(self) -> str:
        """`name ref context NAME=value... +name=path...`, what images.sh reads: build args,
        then named build contexts (no value holds a space)."""
        args = [f"{key}={value}" for key, value in self.build_args.items()]
        args += [
            f"+{key}={path.relative_to(REPO_ROOT)}" for key, path in self.named_contexts.items()
        ]
        return " ".join([self.name, self.ref, str(self.context.relative_to(REPO_ROOT)), *args])


def image_builds() -> list[ImageBuild]:
    """Every image to build, in order: the platform's (CPU), then each team's FROM the trainer."""
    importable()
    from ml_platform.model_specs import team_images
    from ml_platform.settings import team_repository

    images = platform_document().images
    cpu = cpu_build_args()
    builds = [
        ImageBuild(image, ref, image_context(image), cpu, NAMED_CONTEXTS.get(image, {}))
        for image, ref in image_refs().items()
    ]
    trainer = {"TRAINER_BASE": images.ref("trainer")}
    builds += [
        ImageBuild(
            team_repository(team.team, team.name),
            images.team_ref(team.team, team.name),
            team.folder,
            trainer,
        )
        for team in team_images(DAGS_DIR)
    ]
    return builds


def image_context(image: str) -> Path:
    """The build context of a platform image: services/<image>/ with its Dockerfile."""
    context = SERVICES_DIR / image
    if not (context / "Dockerfile").is_file():
        raise ValueError(f"platform image {image!r} has no services/{image}/Dockerfile")
    return context


def dockerfile_arg_defaults(dockerfile: Path) -> dict[str, str]:
    """`ARG NAME=default` lines of a Dockerfile (quotes removed)."""
    defaults = {}
    for line in dockerfile.read_text().splitlines():
        match = re.match(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
        if match:
            defaults[match[1]] = match[2].strip().strip('"')
    return defaults


def cpu_build_args() -> dict[str, str]:
    """Build args that make any platform image a CPU image: the CPU image's own defaults."""
    dockerfile = image_context(CPU_REFERENCE_IMAGE) / "Dockerfile"
    defaults = dockerfile_arg_defaults(dockerfile)
    missing = [name for name in CPU_BUILD_ARGS if not defaults.get(name)]
    if missing:
        raise ValueError(f"{dockerfile.relative_to(REPO_ROOT)}: no default for ARG {missing}")
    return {name: defaults[name] for name in CPU_BUILD_ARGS}


def log_namespaces() -> list[str]:
    """Namespaces whose pods and events a failed e2e run collects."""
    importable()
    from ml_infra.pools_kind import FAKE_GPU_NAMESPACE

    return [*stack_config().namespaces.values(), FAKE_GPU_NAMESPACE, "kube-system"]


def pulumi_env(environ: Mapping[str, str], create: bool = False) -> dict[str, str]:
    """Environment for the Pulumi CLI on the kind stack: the local file backend, and a
    passphrase (the caller's PULUMI_CONFIG_PASSPHRASE[_FILE], else a generated local file,
    written when `create`)."""
    env = {
        "PULUMI_BACKEND_URL": PULUMI_BACKEND_DIR.as_uri(),
        # The stack's salt lives in the state, not in infra/Pulumi.kind.yaml (see deploy.sh).
        "PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER": "true",
    }
    if environ.get("PULUMI_CONFIG_PASSPHRASE") or environ.get("PULUMI_CONFIG_PASSPHRASE_FILE"):
        return env
    if create:
        PULUMI_BACKEND_DIR.mkdir(parents=True, exist_ok=True)
        if not PASSPHRASE_FILE.exists():
            descriptor = os.open(PASSPHRASE_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(32) + "\n")
    env["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(PASSPHRASE_FILE)
    return env


def shell_facts() -> dict[str, str]:
    """What the shell scripts need, as variables."""
    workers = pool_nodes()
    return {
        "KIND_CLUSTER_NAME": cluster_name(),
        "KIND_CONTEXT": kube_context(),
        "KIND_CONFIG": str(CLUSTER_CONFIG),
        "KIND_NODES": " ".join(kind_node_names(cluster_document(), cluster_name())),
        "KIND_POOL_NODES": " ".join(sorted(workers)),
        "KIND_STACK": STACK,
        "KIND_CHECKOUT_PATH": checkout_node_path(),
        "KIND_STATE_DIR": str(STATE_DIR),
        "E2E_ARTIFACTS_DIR": str(E2E_ARTIFACTS_DIR),
        "PULUMI_PROJECT": project_name(),
        "PULUMI_STACK_FILE": str(stack_file()),
    }


def _assignments(values: Mapping[str, str], export: bool) -> str:
    prefix = "export " if export else ""
    return "".join(f"{prefix}{key}={shlex.quote(value)}\n" for key, value in values.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("shell", help="KEY=value lines for `eval` in the kind scripts")
    commands.add_parser(
        "images", help="one `image ref build-context NAME=value...` line per image, in order"
    )
    commands.add_parser("log-namespaces", help="namespaces whose logs a failed run collects")
    pulumi = commands.add_parser("pulumi-env", help="`export` lines for the Pulumi CLI on kind")
    pulumi.add_argument("--create", action="store_true", help="generate the passphrase file")
    args = parser.parse_args(argv)
    try:
        if args.command == "shell":
            sys.stdout.write(_assignments(shell_facts(), export=False))
        elif args.command == "images":
            for build in image_builds():
                print(build.line())
        elif args.command == "log-namespaces":
            print(" ".join(log_namespaces()))
        else:
            sys.stdout.write(_assignments(pulumi_env(os.environ, args.create), export=True))
    except (ValueError, OSError) as exc:
        print(f"kind_platform {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
