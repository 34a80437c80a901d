"""What one reset by code writes (issue 12): two write transactions, the try counted with
its failure slot before the compare, and one after the hashes that holds everything else
(the slot given back, the code used up, the password, the known client, the "ok" row). A
check of a right code is two as well (the try, then the try and the slot given back with
the "ok" row).
Each commit costs a reset more CPU than the rest of its database work, and the two hashes
already take the core: the fewer, the closer resets come to the bound.

Both sides still hold: a right code leaves no failure slot behind, and neither does the
right code of a reset that lost the race for it (owner: their own retries never lock
their network out), while a wrong code keeps its slot and its try (attacker: a guess is
paid before it is compared, in a write that is committed first). Through HTTP behind a
trusted proxy, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from relatch.storage.models import ResetCode
from relatch.storage.models_limits import LimitCounter
from tests.conftest import DATABASES, FakeClock
from tests.helpers.lockout import (
    Deployment,
    deploy_fixture,  # noqa: F401 (the `deploy` fixture)
)
from tests.helpers.statements import counted, recording

HOME = "192.0.2.10"
STRANGER = "198.18.7.7"


def slots_held(d: Deployment) -> int:
    """Failure slots taken and not given back, over every bucket."""
    with d.svc.sessions() as s:
        return int(s.scalar(select(func.coalesce(func.sum(LimitCounter.count), 0))) or 0)


def tries(d: Deployment) -> int:
    with d.svc.sessions() as s:
        return int(s.scalar(select(func.max(ResetCode.attempts))) or 0)


def _with_code(deploy: Callable[..., Deployment]) -> tuple[Deployment, str, str]:
    d = deploy()
    email, _ = d.create(HOME, 1)
    assert d.ask_code(STRANGER, email).json() == {"success": True}
    return d, email, d.mailbox.last_code(email)


@pytest.mark.parametrize("operation", ["reset", "verify"])
@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_a_right_code_is_two_write_transactions_and_leaves_no_slot(
    deploy: Callable[..., Deployment], clock: FakeClock, operation: str
) -> None:
    d, email, code = _with_code(deploy)
    before = slots_held(d)
    with counted(d.svc.engine, "commit") as done, recording(d.svc.engine) as recorded:
        if operation == "reset":
            resp = d.reset(STRANGER, email, code, "a brand new passphrase")
        else:
            resp = d.verify(STRANGER, email, code)
    assert resp.json() == {"success": True}
    assert len(done) == 2, recorded.shapes
    # The slot went back in the second write, with the "ok" row: the hit (an upsert),
    # then given back.
    hits = recorded.writes_to("limit_counters")
    taken = hits.count("INSERT")
    assert taken > 0 and hits == ["INSERT"] * taken + ["UPDATE"] * (len(hits) - taken)
    assert len(hits) > taken
    assert slots_held(d) == before
    assert recorded.writes_to("audit_events") == ["INSERT"]
    if operation == "reset":
        assert d.login(STRANGER, email, "a brand new passphrase").json()["success"] is True
    else:
        assert tries(d) == 0  # a check leaves the code's tries as they were


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_a_wrong_code_keeps_its_slot_and_its_try(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    """Attacker side: the merged write still pays for the guess before the compare."""
    d, email, code = _with_code(deploy)
    wrong = "00000000" if code.replace("-", "") != "00000000" else "11111111"
    before = slots_held(d)
    assert d.reset(STRANGER, email, wrong, "a brand new passphrase").json()["success"] is False
    paid = slots_held(d)
    assert paid > before  # one hit in each window of the per-IP budget
    assert tries(d) == 1
    # The owner's right code still works after it, and gives its own slot back.
    assert d.reset(STRANGER, email, code, "a brand new passphrase").json() == {"success": True}
    assert slots_held(d) == paid


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_a_used_codes_second_reset_is_refused_and_leaves_no_slot(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    """Owner side: the same right code sent twice (a double click, a retry after a lost
    answer) is refused the second time, and that second try was no guess either."""
    d, email, code = _with_code(deploy)
    assert d.reset(STRANGER, email, code, "a brand new passphrase").json() == {"success": True}
    before = slots_held(d)
    assert d.reset(STRANGER, email, code, "another new passphrase").json()["success"] is False
    assert slots_held(d) == before
    assert d.login(STRANGER, email, "a brand new passphrase").json()["success"] is True
