"""Review routing: each team owns its folders, the platform team the rest; the PR checklist."""

from __future__ import annotations

from checks_testkit import REPO

from ml_platform.scaffold.new_dag import CODEOWNERS_ORG

OWNERS = REPO / ".github" / "CODEOWNERS"
PLATFORM_TEAM = f"@{CODEOWNERS_ORG}/platform"


def _rules() -> dict[str, list[str]]:
    rules = {}
    for line in OWNERS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            pattern, *owners = line.split()
            rules[pattern] = owners
    return rules


def test_the_platform_team_owns_the_library_infra_charts_images_and_verbs() -> None:
    rules = _rules()
    for pattern in ("*", "/dags/ml_platform/", "/infra/", "/helm/", "/services/", "/Makefile"):
        assert rules.get(pattern) == [PLATFORM_TEAM], pattern


def test_every_team_folder_has_its_team_as_owner() -> None:
    rules = _rules()
    teams = REPO / "dags" / "teams"
    for team in sorted(p.name for p in teams.iterdir() if p.is_dir()) if teams.exists() else []:
        owner = [f"@{CODEOWNERS_ORG}/{team}"]
        assert rules.get(f"/dags/teams/{team}/") == owner, f"add: /dags/teams/{team}/ {owner[0]}"
        assert rules.get(f"/tests/teams/{team}/") == owner, f"add: /tests/teams/{team}/ {owner[0]}"


def test_the_pull_request_checklist_names_the_commands() -> None:
    template = (REPO / ".github" / "pull_request_template.md").read_text()
    for command in ("make check-dags", "make test", "make run-dag DAG=<dag_id>"):
        assert f"`{command}`" in template
    anchor = template.split("docs/ml-teams.md#", 1)[1].split(")", 1)[0]
    assert f"\n## {anchor.replace('-', ' ')}".lower() in (
        (REPO / "docs" / "ml-teams.md").read_text().lower().replace("'", "")
    )
