"""Rules for the model specs and team trainer images under the DAG folders checked.

A spec (`<model>.model.yaml`, ml_contract) must parse (MLP401), name a registered model no
other spec names (MLP402) and train with the platform trainer or an image of its own team
(MLP403). A team image, `teams/<team>/images/<name>/Dockerfile`, must build on the trainer
image the platform passes in as TRAINER_BASE and start `python -m <module>` (MLP404), so it
keeps the trainer's subcommands, user and contract library and runs the team's code.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from ml_contract import SPEC_SUFFIX, ModelSpec, SpecError, load_spec
from ml_platform.model_specs import DAGS_FOLDER, PLATFORM_TEAM, spec_files, team_of
from ml_platform.violations import Finding, Violation

TRAINER_BASE_ARG = "TRAINER_BASE"
_BASE_REFERENCES = (f"${{{TRAINER_BASE_ARG}}}", f"${TRAINER_BASE_ARG}")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_HEREDOC = re.compile(r"<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
_ESCAPE_DIRECTIVE = re.compile(r"#\s*escape\s*=\s*(\S)\s*$", re.IGNORECASE)
SPEC_FIX = 'fix that key; the format is in docs/ml-teams.md, "The model spec"'
BASE_FIX = (
    f"start the file with `ARG {TRAINER_BASE_ARG}` and the final stage with "
    f"`FROM ${{{TRAINER_BASE_ARG}}}`: the platform builds the image on its trainer"
)
ENTRYPOINT_FIX = 'ENTRYPOINT ["python", "-m", "train"], with train.py in the image folder'


def dags_root(path: Path) -> Path:
    """The DAGs folder a checked path belongs to: dags/ when inside it, else the folder itself."""
    path = path.resolve()
    if path.is_relative_to(DAGS_FOLDER):
        return DAGS_FOLDER
    return path if path.is_dir() else path.parent


def images_folder(root: Path, team: str) -> Path:
    """Where a team's trainer images live: teams/<team>/images/<name>/Dockerfile."""
    return root / "teams" / team / "images"


@dataclass
class _Found:
    """The specs and team images under the checked paths, each once."""

    specs: dict[Path, Path] = field(default_factory=dict)  # spec file -> its DAGs folder
    dockerfiles: dict[Path, Path] = field(default_factory=dict)


def _discover(paths: list[str]) -> _Found:
    found = _Found()
    for raw in paths:
        path = Path(raw).resolve()
        root = dags_root(path)
        if path.is_file():
            if path.name.endswith(SPEC_SUFFIX):
                found.specs.setdefault(path, root)
            continue
        for spec in spec_files(path):
            found.specs.setdefault(spec.resolve(), root)
        for dockerfile in sorted(path.rglob("Dockerfile")):
            resolved = dockerfile.resolve()
            if not resolved.is_relative_to(root):  # a link out of the DAGs folder
                continue
            parts = resolved.relative_to(root).parts
            if len(parts) == 5 and parts[0] == "teams" and parts[2] == "images":
                found.dockerfiles.setdefault(resolved, root)
    return found


def _shown(path: Path) -> str:
    from ml_platform.checks.runner import display_path

    return display_path(str(path))


def spec_findings(paths: list[str]) -> list[Finding]:
    """MLP401-MLP404 for every spec and team image under `paths` (folders or spec files)."""
    found = _discover(paths)
    findings: list[Finding] = []
    loaded: list[tuple[Path, ModelSpec]] = []
    for path, root in sorted(found.specs.items()):
        shown = _shown(path)
        try:
            spec = load_spec(path)
        except SpecError as exc:
            detail = f"{exc.key}: {exc.problem}" if exc.key else exc.problem
            findings.append(Violation("MLP401", detail, SPEC_FIX).at(shown, exc.line or 1))
            continue
        loaded.append((path, spec))
        findings += _image_findings(spec, shown, team_of(path, root), root)
    findings += _duplicate_findings(loaded)
    for dockerfile in sorted(found.dockerfiles):
        findings += dockerfile_findings(dockerfile)
    return findings


def _duplicate_findings(loaded: list[tuple[Path, ModelSpec]]) -> list[Finding]:
    by_model: dict[str, list[tuple[Path, ModelSpec]]] = {}
    for path, spec in loaded:
        by_model.setdefault(spec.model, []).append((path, spec))
    findings = []
    for model, specs in by_model.items():
        if len(specs) < 2:
            continue
        for path, spec in specs:
            others = ", ".join(f"{_shown(p)}:{s.line_of('model')}" for p, s in specs if p != path)
            findings.append(
                Violation(
                    "MLP402",
                    f"model {model!r} is also the registered model of {others}",
                    "give each spec its own model name: two specs would train, promote and "
                    "serve the same registered model",
                ).at(_shown(path), spec.line_of("model"))
            )
    return findings


def _image_findings(spec: ModelSpec, shown: str, team: str, root: Path) -> list[Finding]:
    image = spec.trainer.image
    folder = images_folder(root, team) / image
    if spec.trainer.is_platform or (team != PLATFORM_TEAM and (folder / "Dockerfile").is_file()):
        return []
    owners = sorted(
        p.parents[2].name for p in (root / "teams").glob(f"*/images/{image}/Dockerfile")
    )
    if team == PLATFORM_TEAM:
        why = "the platform's own specs train with the platform trainer"
        fix = "use `image: trainer`, or move the spec and its DAG to the team's folder"
    else:
        missing = "has no Dockerfile" if folder.is_dir() else "does not exist"
        why = f"{_shown(folder)} {missing}"
        fix = f"use `image: trainer`, or add teams/{team}/images/{image}/Dockerfile"
    if owners:
        why += f"; it is an image of team {', '.join(owners)}, and images are per team"
    return [
        Violation(
            "MLP403",
            f"trainer image {image!r} is neither the platform trainer nor an image of team "
            f"{team!r} ({why})",
            fix,
        ).at(shown, spec.line_of("trainer.image"))
    ]


# --- team images ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    line: int
    name: str  # upper case: FROM, ARG, ENTRYPOINT, ...
    args: str


def dockerfile_instructions(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile with their first line; continuations and heredocs
    joined or skipped as BuildKit reads them (comments, blank lines, `# escape=`)."""
    lines = text.splitlines()
    escape = "\\"
    for raw in lines:  # parser directives: comments at the very top
        if not raw.startswith("#"):
            break
        if match := _ESCAPE_DIRECTIVE.match(raw):
            escape = match[1]
    instructions: list[Instruction] = []
    index = 0
    while index < len(lines):
        start, raw = index + 1, lines[index].strip()
        index += 1
        if not raw or raw.startswith("#"):
            continue
        parts = [raw]
        while parts[-1].endswith(escape) and index < len(lines):
            parts[-1] = parts[-1][: -len(escape)]
            following = lines[index].strip()
            index += 1
            if following and not following.startswith("#"):
                parts.append(following)
        joined = " ".join(p.strip() for p in parts if p.strip())
        name, _, args = joined.partition(" ")
        instructions.append(Instruction(start, name.upper(), args.strip()))
        for heredoc in _HEREDOC.finditer(args):  # RUN <<EOF ... EOF: the body is no instruction
            end = heredoc[3]
            while index < len(lines):
                body = lines[index]
                index += 1
                if (body.lstrip("\t") if heredoc[1] else body) == end:
                    break
    return instructions


@dataclass
class _Stage:
    line: int
    base: str
    name: str | None
    entrypoint: Instruction | None = None


def _stages(instructions: list[Instruction]) -> list[_Stage]:
    stages: list[_Stage] = []
    for instruction in instructions:
        if instruction.name == "FROM":
            words = [w for w in instruction.args.split() if not w.startswith("--")]
            base = words[0] if words else ""
            name = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(_Stage(instruction.line, base, name))
        elif instruction.name == "ENTRYPOINT" and stages:
            stages[-1].entrypoint = instruction
    return stages


def _global_args(instructions: list[Instruction]) -> set[str]:
    names = set()
    for instruction in instructions:
        if instruction.name == "FROM":
            break
        if instruction.name == "ARG":
            try:
                words = shlex.split(instruction.args)
            except ValueError:
                words = instruction.args.split()
            names.update(word.split("=", 1)[0] for word in words)
    return names


def dockerfile_findings(dockerfile: Path) -> list[Finding]:
    """MLP404: a team image builds on TRAINER_BASE and runs `python -m <module>`."""
    shown = _shown(dockerfile)
    image = dockerfile.parent.name
    try:
        text = dockerfile.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        return [
            Violation("MLP404", f"image {image!r}: cannot read ({reason})", BASE_FIX).at(shown, 1)
        ]
    instructions = dockerfile_instructions(text)
    stages = _stages(instructions)
    if not stages:
        return [
            Violation("MLP404", f"image {image!r}: the Dockerfile has no FROM", BASE_FIX).at(
                shown, 1
            )
        ]
    findings = []
    if TRAINER_BASE_ARG not in _global_args(instructions):
        findings.append(
            Violation(
                "MLP404",
                f"image {image!r}: no `ARG {TRAINER_BASE_ARG}` before the first FROM",
                BASE_FIX,
            ).at(shown, stages[0].line)
        )
    # The final stage, and the stages it builds on by name: its base and inherited ENTRYPOINT.
    chain = [stages[-1]]
    named = {s.name: s for s in stages[:-1] if s.name}
    while chain[-1].base.lower() in named and named[chain[-1].base.lower()] not in chain:
        chain.append(named[chain[-1].base.lower()])
    if chain[-1].base not in _BASE_REFERENCES:
        findings.append(
            Violation(
                "MLP404",
                f"image {image!r}: the final stage builds on {chain[-1].base!r}, not on the "
                f"platform trainer (${{{TRAINER_BASE_ARG}}})",
                BASE_FIX,
            ).at(shown, chain[-1].line)
        )
    entrypoint = next((s.entrypoint for s in chain if s.entrypoint), None)
    if entrypoint is None:
        findings.append(
            Violation(
                "MLP404",
                f"image {image!r}: the final stage sets no ENTRYPOINT (it would run the "
                "platform trainer's own)",
                ENTRYPOINT_FIX,
            ).at(shown, stages[-1].line)
        )
        return findings
    problem = _entrypoint_problem(entrypoint.args, dockerfile.parent)
    if problem:
        findings.append(
            Violation("MLP404", f"image {image!r}: {problem}", ENTRYPOINT_FIX).at(
                shown, entrypoint.line
            )
        )
    return findings


def _entrypoint_problem(args: str, folder: Path) -> str | None:
    try:
        command = json.loads(args)
    except ValueError:
        command = None
    if not isinstance(command, list) or not all(isinstance(w, str) for w in command):
        return f'ENTRYPOINT {args} is in shell form, not exec form ["python", "-m", "<module>"]'
    if len(command) != 3 or command[:2] != ["python", "-m"] or not _MODULE.fullmatch(command[2]):
        return f'ENTRYPOINT {args} is not ["python", "-m", "<module>"]'
    module = command[2]
    source = folder / (module.replace(".", "/") + ".py")
    if not source.is_file():
        missing = source.relative_to(folder)
        return f"ENTRYPOINT runs module {module!r}, but the image folder has no {missing}"
    return None
