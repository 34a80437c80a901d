"""Nobody can lock an owner out, and strangers still cannot guess (issue 8, finding 1).

Through HTTP behind a trusted proxy, `X-Forwarded-For` standing for each client, with the
shipped default limits: strangers spend an account's shared failure budget, and the owner
still gets in, from a network it signed in from before (a known client with a budget of its
own) or through the mailbox from anywhere; a stranger with the right password does not.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from relatch.core import codes
from tests.conftest import DATABASES, FakeClock
from tests.helpers.limit_backends import BACKENDS
from tests.helpers.lockout import (
    LIMITED,
    PASSWORD,
    WRONG,
    Deployment,
    deploy_fixture,  # noqa: F401 (the `deploy` fixture)
    limited,
    strangers,
)

HOME = "192.0.2.10"  # the owner's home network, 192.0.2.0/24
HOME_OTHER_HOST = "192.0.2.77"  # another device on the same network
DAY = 86400


def wrong_code(right: str | None = None) -> str:
    while True:
        guess = codes.display(codes.generate())
        if guess != right:
            return guess


@pytest.mark.parametrize("deploy", BACKENDS, indirect=True)
def test_strangers_cannot_keep_the_owner_out(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    d = deploy()
    email, username = d.create(HOME, 1)
    assert d.login(HOME, username).json()["success"] is True
    clock.advance(DAY)  # the owner signed in from home yesterday

    def attack(address: str) -> list[tuple[int, str | None, Any]]:
        """12 wrong passwords and 12 wrong codes, each from another stranger's network."""
        out = []
        for ip in strangers(12):
            r = d.login(ip, address, "not the password")
            out.append((r.status_code, r.headers.get("retry-after"), r.json()))
        for ip in strangers(12, base=100):
            r = d.verify(ip, address, wrong_code())
            out.append((r.status_code, r.headers.get("retry-after"), r.json()))
        return out

    on_account = attack(email)
    # Enumeration: an address without an account answers exactly the same.
    assert attack("ghost@example.com") == on_account
    # 10/15m per account for strangers; code failures spend only their own IP's budget.
    assert [s for s, _, _ in on_account] == [200] * 10 + [429] * 2 + [200] * 12
    assert on_account[10][2] == LIMITED

    # Strangers still cannot guess: even the right password from an unknown client waits.
    assert limited(d.login("100.64.200.9", email))
    # The owner's network signed in yesterday: its own budget, so the owner gets in.
    assert d.login(HOME_OTHER_HOST, username).json()["success"] is True
    assert d.login(HOME, email).json()["success"] is True

    # The owner on a brand-new network: a stranger like any other for the password...
    cafe = "198.18.5.5"
    assert limited(d.login(cafe, email))
    # ...but the mailbox always works: ask for a code, receive it, reset, sign in there.
    assert d.ask_code(cafe, email).json() == {"success": True}
    code = d.mailbox.last_code(email)
    assert d.verify(cafe, email, code).json() == {"success": True}
    assert d.reset(cafe, email, code, "owner is back in").json() == {"success": True}
    assert d.login(cafe, email, "owner is back in").json()["success"] is True
    # A stranger who learnt the new password is still refused until the window ends.
    assert limited(d.login("100.64.201.9", email, "owner is back in"))
    clock.advance(15 * 60)
    assert d.login("100.64.201.9", email, "owner is back in").json()["success"] is True


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_a_known_network_has_a_small_budget_of_its_own(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    """Carrier NAT and offices share a network: its budget is small (3/15m by default), and
    it stays known for RELATCH_KNOWN_CLIENT_DAYS (30) after its last success."""
    d = deploy()
    email, username = d.create(HOME, 1)
    assert d.login(HOME, username).json()["success"] is True
    for ip in strangers(10):
        assert d.login(ip, email, "nope").json() == WRONG
    assert limited(d.login("100.64.99.9", email))
    for _ in range(3):
        assert d.login(HOME_OTHER_HOST, email, "nope").json() == WRONG
    assert limited(d.login(HOME, email))  # its own budget is spent now, the owner waits
    clock.advance(15 * 60)
    assert d.login(HOME, email).json()["success"] is True
    # Remembered for 30 days after that last success, then a stranger again.
    clock.advance(30 * DAY - 1)
    for ip in strangers(10, base=50):
        assert d.login(ip, email, "nope").json() == WRONG
    assert d.login(HOME, email).json()["success"] is True  # renewed: 30 more days
    clock.advance(30 * DAY)
    for ip in strangers(10, base=70):
        assert d.login(ip, email, "nope").json() == WRONG
    assert limited(d.login(HOME, email))


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
@pytest.mark.parametrize("action", ["reset", "change", "not_me"])
def test_reset_change_and_not_me_forget_every_other_known_client(
    deploy: Callable[..., Deployment], clock: FakeClock, action: str
) -> None:
    """Takeover: a phisher who signed in with the stolen password keeps no budget of its
    own once the owner acts; the client that acted stays known."""
    from tests.helpers.not_me import notice_link, open_page, token_of

    d = deploy()
    phisher, owner = "203.0.113.50", HOME
    email, username = d.create(owner, 1)
    assert d.login(owner, username).json()["success"] is True
    phisher_token = d.login(phisher, username).json()["token"]
    for ip in strangers(10):
        assert d.login(ip, email, "nope").json() == WRONG
    # Both are known: a wrong password from either is a failure, not a refusal.
    assert d.login(phisher, email, "nope").json() == WRONG
    assert d.login(owner, email, "nope").json() == WRONG

    new = "owner took it back"
    if action == "reset":
        assert d.ask_code(owner, email).json() == {"success": True}
        code = d.mailbox.last_code(email)
        assert d.reset(owner, email, code, new).json() == {"success": True}
    elif action == "change":
        token = d.login(owner, username).json()["token"]
        body = {"currentPassword": PASSWORD, "newPassword": new}
        resp = d.api(owner, "api/user/change-password", body, **{"x-jwt-token": token})
        assert resp.json() == {"success": True}
    else:
        # The phisher changed the password (and so became the only known client); the
        # owner answers the notice: "this was not me", then resets with the mailed code.
        body = {"currentPassword": PASSWORD, "newPassword": "phisher owns it now"}
        resp = d.api(phisher, "api/user/change-password", body, **{"x-jwt-token": phisher_token})
        assert resp.json() == {"success": True}
        browser = d.browser()
        path = notice_link(d.mailbox, email)
        _, csrf = open_page(browser, path)
        form = {"token": token_of(path), "csrf_token": csrf}
        done = browser.post("/not-me", data=form, headers={"X-Forwarded-For": owner})
        assert done.status_code == 200
        # Forgotten: the phisher's network is a stranger again.
        assert limited(d.login(phisher, email, "nope"))
        code = d.mailbox.last_code(email)
        assert d.reset(owner, email, code, new).json() == {"success": True}

    assert limited(d.login(phisher, email, "nope"))
    assert limited(d.login(phisher, email, new))
    assert d.login(owner, email, new).json()["success"] is True


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_twenty_parallel_resets_with_one_code_then_the_winner_signs_in(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    """The losers of the race held the right code: they lost, they did not guess, so they
    leave no failure behind (neither the account's budget nor their IP's)."""
    d = deploy(failures_per_ip="20/15m")
    email, _ = d.create(HOME, 1)
    assert d.ask_code(HOME, email).json() == {"success": True}
    code = d.mailbox.last_code(email)
    browser = d.browser()
    barrier = threading.Barrier(20)

    def attempt(i: int) -> tuple[str, bool]:
        barrier.wait()
        body = {"email": email, "code": code, "newPassword": f"new password number {i}"}
        resp = browser.post(
            "/v1/api-user-reset-password", json=body, headers={"X-Forwarded-For": HOME}
        )
        assert resp.status_code == 200, resp.text
        return body["newPassword"], resp.json()["success"]

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(attempt, range(20)))
    winners = [password for password, ok in outcomes if ok]
    assert len(winners) == 1
    # From the network that reset (known now), and from a stranger's (the shared budget).
    assert d.login(HOME, email, winners[0]).json()["success"] is True
    assert d.login("198.18.9.9", email, winners[0]).json()["success"] is True
    # Not one failure was counted on the racing IP: 20 wrong passwords still fit its budget.
    for i in range(20):
        assert d.login(HOME, f"somebody{i}", "nope").json() == WRONG


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_a_known_client_can_ask_for_a_code_when_strangers_spent_the_address_budget(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    d = deploy()
    email, username = d.create(HOME, 1)
    assert d.login(HOME, username).json()["success"] is True
    # Mail bombing by strangers spends the address's 3 requests per 15 minutes.
    answers = [d.ask_code(ip, email).status_code for ip in strangers(5)]
    assert answers == [200, 200, 200, 429, 429]
    assert limited(d.ask_code("198.18.1.1", email))  # any unknown client waits
    # The owner's known network has its own bucket: the code is sent.
    d.mailbox.run_workers()
    sent = len(d.mailbox.to(email))
    assert d.ask_code(HOME_OTHER_HOST, email).json() == {"success": True}
    code = d.mailbox.last_code(email)
    assert len(d.mailbox.to(email)) == sent + 1
    assert d.reset(HOME, email, code, "owner is back in").json() == {"success": True}
    # Its own bucket is bounded too (3/15m by default): not a way around mail bombing.
    answers = [d.ask_code(HOME, email).status_code for _ in range(3)]
    assert answers == [200, 200, 429]


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_an_ipv6_client_is_known_by_its_64(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    d = deploy()
    email, username = d.create("2001:db8:1:2::10", 1)
    assert d.login("2001:db8:1:2::10", username).json()["success"] is True
    for ip in strangers(10):
        assert d.login(ip, email, "nope").json() == WRONG
    # Another address of the same /64 (privacy addresses change): the same known network.
    assert d.login("2001:db8:1:2:ffff:ee::1", email).json()["success"] is True
    # The next /64 is somebody else.
    assert limited(d.login("2001:db8:1:3::10", email))


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_strangers_who_use_up_a_codes_tries_do_not_kill_it_for_a_known_client(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    """5 wrong tries kill a code for unknown clients; the owner's known network counts its
    own 5 tries on it, so strangers guessing cannot take the mailbox away from it."""
    d = deploy()
    email, username = d.create(HOME, 1)
    assert d.login(HOME, username).json()["success"] is True
    assert d.ask_code(HOME, email).json() == {"success": True}
    code = d.mailbox.last_code(email)
    for ip in strangers(6):
        assert d.verify(ip, email, wrong_code(code)).json()["success"] is False
    # Dead for unknown clients, even with the right code...
    assert d.verify("198.18.2.2", email, code).json()["success"] is False
    # ...alive for the owner's network: a wrong try of its own, then the right code.
    assert d.verify(HOME, email, wrong_code(code)).json()["success"] is False
    assert d.verify(HOME_OTHER_HOST, email, code).json() == {"success": True}
    assert d.reset(HOME, email, code, "owner is back in").json() == {"success": True}
    assert d.login(HOME, email, "owner is back in").json()["success"] is True


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_a_reset_from_a_known_network_with_its_budget_spent_lets_the_owner_in_at_once(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    """Found by the red-team pass of issue 8: a neighbour behind the same carrier NAT (or
    the owner's own typos) spends the known network's small budget; the owner resets from
    that network with the mailed code, and the sign-in right after was still refused for
    the rest of the window: the reset renewed the row but kept its spent bucket."""
    d = deploy()
    email, username = d.create(HOME, 1)
    assert d.login(HOME, username).json()["success"] is True
    for _ in range(3):
        assert d.login(HOME_OTHER_HOST, email, "nope").json() == WRONG
    assert limited(d.login(HOME, email))
    assert d.ask_code(HOME, email).json() == {"success": True}
    code = d.mailbox.last_code(email)
    new = "owner is back in"
    assert d.reset(HOME, email, code, new).json() == {"success": True}
    assert d.login(HOME, email, new).json()["success"] is True
    # Still a small budget, not an unlimited one: the neighbour gets 3 more tries.
    for _ in range(3):
        assert d.login(HOME_OTHER_HOST, email, "nope").json() == WRONG
    assert limited(d.login(HOME, email, new))
    # A sign-in (not a reset) renews nothing: the network waits for its window.
    clock.advance(15 * 60)
    assert d.login(HOME, email, new).json()["success"] is True
