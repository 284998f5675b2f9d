"""How the local runtime answers a run's human-in-the-loop requests (ml_platform.local.approvals).

The answers themselves are written on a real metadata DB by the DAG runs of
tests/integration/test_promotion_gates_local.py; here, which option each flag picks.
"""

from __future__ import annotations

import io

import pytest

from ml_platform.approval import describe_approval
from ml_platform.local.approvals import APPROVE, REJECT, ApprovalPolicy, choose, policy_from_flags


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("options", "defaults", "answer", "chosen"),
    [
        (["Deploy", "Skip"], ["Skip"], APPROVE, ["Deploy"]),
        (["Deploy", "Skip"], ["Skip"], REJECT, ["Skip"]),
        (["Approve", "Reject"], None, APPROVE, ["Approve"]),
        (["Approve", "Reject"], None, REJECT, ["Reject"]),
        (["OK"], ["OK"], APPROVE, ["OK"]),
    ],
)
def test_each_flag_picks_the_option_a_person_would(
    options: list[str], defaults: list[str] | None, answer: str, chosen: list[str]
) -> None:
    assert choose(options, defaults, answer) == chosen


def test_a_terminal_is_asked_only_when_no_flag_answers() -> None:
    assert policy_from_flags(True, False, None, _Terminal()) == ApprovalPolicy(APPROVE)
    assert policy_from_flags(False, True, 5.0, _Terminal()) == ApprovalPolicy(REJECT, 5.0)
    assert policy_from_flags(False, False, None, _Terminal()).interactive
    assert not policy_from_flags(False, False, 3.0, _Terminal()).interactive
    assert not policy_from_flags(False, False, None, io.StringIO()).interactive


def test_the_summary_line_says_who_decided() -> None:
    assert describe_approval({"required": False}).startswith("not needed")
    assert describe_approval(None).startswith("not needed")
    person = {"required": True, "chosen": "Deploy", "timed_out": False, "responded_by": "ana"}
    assert describe_approval(person) == "Deploy chosen by ana"
    late = {"required": True, "chosen": "Skip", "timed_out": True, "responded_by": None}
    assert describe_approval(late) == "nobody answered in time: Skip by default"
