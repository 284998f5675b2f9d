"""Run the infra/ program under Pulumi's mocks for one stack and record what it declares.

No CLI and no cloud: `pulumi.runtime.set_mocks` replaces the engine, every resource the
program registers goes through `RecordingMocks.new_resource`, which keeps its type, name and
inputs (secret values keep Pulumi's secret wrapper, so tests can see what is marked secret).
"""

from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import settings as pulumi_settings

# The markers Pulumi wraps secret values in: {SIG_KEY: SECRET_SIG, "value": ...}.
from pulumi.runtime.rpc import _special_secret_sig as SECRET_SIG
from pulumi.runtime.rpc import _special_sig_key as SIG_KEY

INFRA_DIR = Path(__file__).resolve().parents[2] / "infra"
PROJECT = "ml-platform"
STACKS = ("kind", "dev", "prod")
# Values each organisation sets with `pulumi config set` for a cloud stack (see the comments
# at the top of infra/Pulumi.dev.yaml and Pulumi.prod.yaml); tests use these.
SITE_SETTINGS = {
    "dev": {
        "gcp:project": "ml-platform-tests",
        "ml-platform:images.registry": "europe-west4-docker.pkg.dev/ml-platform-tests/ml",
        "ml-platform:airflow.dags.repo_url": "https://git.example.test/ml-platform.git",
        "ml-platform:gcp.api_allowed_cidrs": ["198.51.100.0/24"],
    },
    "prod": {
        "ml-platform:images.registry": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ml",
        "ml-platform:airflow.dags.repo_url": "https://git.example.test/ml-platform.git",
        "ml-platform:aws.api_allowed_cidrs": ["198.51.100.0/24", "203.0.113.7/32"],
    },
}


def repository_models() -> dict[str, str]:
    """model -> team of every spec under dags/, as the DAG library reads them (not infra)."""
    from ml_contract import load_spec
    from ml_platform.model_specs import spec_files, team_of

    return {load_spec(path).model: team_of(path) for path in spec_files()}


MODELS = repository_models()


# What the mocked AWS answers for the region's S3 prefix list (com.amazonaws.<region>.s3).
S3_PREFIX_LIST_CIDRS = ("3.5.64.0/21", "52.218.0.0/17", "52.92.40.0/21")


@dataclass
class Declared:
    type: str
    name: str
    inputs: dict[str, Any]


@dataclass
class RecordingMocks(pulumi.runtime.Mocks):
    declared: list[Declared] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)  # the stack outputs, resolved
    calls: list[tuple[str, dict]] = field(default_factory=list)  # invokes: (token, args)

    def of_type(self, suffix: str) -> list[Declared]:
        """Declared resources whose type token ends with `suffix`, e.g. ':Secret'."""
        return [d for d in self.declared if d.type.endswith(suffix)]

    def named(self, name: str, type_suffix: str = "") -> Declared:
        matches = [d for d in self.of_type(type_suffix) if d.name == name]
        assert len(matches) == 1, f"{len(matches)} resources named {name!r} of {type_suffix!r}"
        return matches[0]

    def release(self, name: str) -> Declared:
        return self.named(name, ":Release")

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        self.declared.append(Declared(args.typ, args.name, copy.deepcopy(args.inputs)))
        return f"{args.name}-id", {**args.inputs, **_outputs(args)}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
        self.calls.append((args.token, copy.deepcopy(args.args)))
        return _call_result(args.token, args.args), []


def _call_result(token: str, args: dict[str, Any]) -> dict[str, Any]:
    """What the cloud would answer to the data sources the program reads."""
    if token == "aws:ec2/getManagedPrefixList:getManagedPrefixList":
        name = args.get("name", "")
        if name.startswith("com.amazonaws.") and name.endswith(".s3"):
            entries = [{"cidr": cidr, "description": ""} for cidr in S3_PREFIX_LIST_CIDRS]
            return {"id": "pl-mock", "name": name, "entries": entries}
    return {}


def _outputs(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    """Outputs the cloud would compute that the program reads back."""
    name = args.name
    outputs: dict[str, Any] = {"arn": f"arn:mock:{name}", "name": args.inputs.get("name", name)}
    by_type = {
        "random:index/randomPassword:RandomPassword": {"result": f"generated{name}"},
        "random:index/randomBytes:RandomBytes": {
            "base64": "bW9jay1rZXktMzItYnl0ZXMtbG9uZy0tLS0tLS0tLS0=",
            "hex": "00",
        },
        "aws:eks/cluster:Cluster": {
            "endpoint": "https://eks.mock",
            "certificateAuthority": {"data": "Q0E="},
            "identities": [{"oidcs": [{"issuer": "https://oidc.eks.mock/id/MOCK"}]}],
        },
        # AWS declares no key; a recognisable secret lets test_infra_storage_roles see one
        # that came back reach a Secret.
        "aws:iam/accessKey:AccessKey": {"secret": "mock-secret-access-key"},
        "aws:rds/instance:Instance": {"address": "postgres.rds.mock"},
        "gcp:container/cluster:Cluster": {
            "endpoint": "203.0.113.10",
            "masterAuth": {"clusterCaCertificate": "Q0E="},
        },
        "gcp:serviceaccount/account:Account": {"email": f"{name}@mock.iam"},
        "gcp:sql/databaseInstance:DatabaseInstance": {"privateIpAddress": "10.99.0.3"},
    }
    outputs.update(by_type.get(args.typ, {}))
    return outputs


def stack_file(stack: str) -> Path:
    return INFRA_DIR / f"Pulumi.{stack}.yaml"


def engine_config(stack: str, overrides: dict[str, Any] | None = None) -> dict[str, str]:
    """The stack's config the way the engine hands it to the program: `project:key` -> text,
    structured values as JSON. `overrides` replace whole top-level keys (None deletes)."""
    raw = dict(yaml.safe_load(stack_file(stack).read_text())["config"])
    for key, value in SITE_SETTINGS.get(stack, {}).items():
        if key.count(".") and key.startswith(f"{PROJECT}:"):
            top, _, path = key.partition(".")
            target = raw.setdefault(top, {})
            *parents, leaf = path.split(".")
            for parent in parents:
                target = target.setdefault(parent, {})
            target[leaf] = value
        else:
            raw[key] = value
    for key, value in (overrides or {}).items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return {
        key: json.dumps(value) if isinstance(value, dict | list) else str(value)
        for key, value in raw.items()
    }


def stack_values(stack: str) -> dict[str, Any]:
    """The stack's `ml-platform:*` values, decoded (a copy to edit into a bad config)."""
    return {
        key: json.loads(value) if value[:1] in "[{" else value
        for key, value in engine_config(stack).items()
    }


def stack_config(stack: str) -> Any:
    """The committed stack's config as the program parses it (ml_infra.config.StackConfig)."""
    from ml_infra.config import parse_stack_config

    values = stack_values(stack)
    ours = {k.partition(":")[2]: v for k, v in values.items() if k.startswith(f"{PROJECT}:")}
    others = {k: v for k, v in values.items() if not k.startswith(f"{PROJECT}:")}
    return parse_stack_config(stack, ours, others)


def declared_secrets(stack: str) -> dict[tuple[str, str], dict]:
    """(namespace, name) -> stringData, unwrapped, of every Secret the stack declares."""
    return {
        (s.inputs["metadata"]["namespace"], s.inputs["metadata"]["name"]): unwrap(
            s.inputs["stringData"]
        )
        for s in declared(stack).of_type("core/v1:Secret")
    }


def release_values(stack: str, release: str) -> dict:
    """The Helm values of one of the stack's releases, unwrapped."""
    return unwrap(declared(stack).release(release).inputs["values"])


def _use_mocks(stack: str, config: dict[str, str]) -> RecordingMocks:
    # Pulumi's runtime makes its futures on the thread's current event loop; a test that ran
    # before (asyncio.run in Airflow or the deployer) can leave the main thread without one.
    asyncio.set_event_loop(asyncio.new_event_loop())
    mocks = RecordingMocks()
    pulumi_settings.ROOT.set(None)  # a fresh root Stack resource per run
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)
    pulumi.runtime.set_all_config(config)
    return mocks


def run_program(stack: str, config: dict[str, str] | None = None) -> RecordingMocks:
    """Run infra/'s program for `stack` to completion; return everything it declared."""
    from ml_infra.program import main

    mocks = _use_mocks(stack, config if config is not None else engine_config(stack))

    @pulumi.runtime.test
    def program() -> pulumi.Output:
        main()
        exported = dict(pulumi_settings.get_root_resource().outputs)
        return pulumi.Output.from_input(exported).apply(mocks.outputs.update)

    program()
    return mocks


@cache
def declared(stack: str) -> RecordingMocks:
    """Everything the program declares for a committed stack (run once per session)."""
    return run_program(stack)


def run_program_expecting_error(stack: str, config: dict[str, str]) -> tuple[Exception, int]:
    """Run the program with a config it must refuse: (the error, resources declared)."""
    from ml_infra.program import main

    mocks = _use_mocks(stack, config)
    try:
        main()
    except Exception as exc:  # handed to the test to inspect
        return exc, len(mocks.declared)
    raise AssertionError(f"stack {stack}: the program accepted the config")


def unwrap(value: Any) -> Any:
    """The plain value, with Pulumi's secret wrappers removed."""
    if isinstance(value, dict):
        if is_secret(value):
            return unwrap(value["value"])
        return {key: unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    return value


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG
