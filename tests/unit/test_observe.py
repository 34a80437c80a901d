"""Which outcome an answer counts as (http/observe.py): the contract's, plus `error`."""

from __future__ import annotations

import pytest

from relatch.http import observe


@pytest.mark.parametrize(
    ("status", "refused", "outcome"),
    [
        (200, False, "success"),
        (302, False, "success"),
        (200, True, "refused"),
        (400, False, "bad_input"),
        (404, False, "bad_input"),
        (431, False, "bad_input"),
        (401, False, "unauthenticated"),
        (403, False, "unauthenticated"),
        (429, False, "limited"),
        (503, False, "unavailable"),
        (500, False, "error"),
        (502, True, "error"),
    ],
)
def test_outcome(status: int, refused: bool, outcome: str) -> None:
    scope: dict[str, object] = {}
    if refused:
        observe.mark_refused(scope)
    assert observe.outcome(status, scope) == outcome
