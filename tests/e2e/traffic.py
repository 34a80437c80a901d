"""Requests without pause from client threads, each answer recorded: what the fault tests
of a real `relatch serve` count (tests/e2e/test_database_restart.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from pathlib import Path

import httpx

from relatch.mail.transports import list_messages
from tests.helpers.app import CODE_LINE

BOUND = 5.0  # seconds no answer may take (the contract's "never a hang")
PASSWORD = "analytical engine one"
# Kinds answered, when refused, in OAuth's shape (RFC 6749 5.2) or as a page.
PAGES = {"authorize"}
NOT_CONTRACT = {"token", *PAGES}

Loop = Callable[[httpx.Client], None]


@dataclass
class Answer:
    kind: str
    at: float  # monotonic time the request was sent
    took: float
    status: int  # 0: no HTTP answer at all
    ok: bool  # served: a 200 with success=true (OAuth and pages: any answer under 500)
    shape: bool  # a 503 with Retry-After, a page or the contract's shape; other refusals too


@dataclass
class Traffic:
    url: str
    stop: threading.Event = field(default_factory=threading.Event)
    answers: list[Answer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    failures: list[str] = field(default_factory=list)

    def call(self, http: httpx.Client, kind: str, method: str, path: str, **kw: object) -> Answer:
        started = time.monotonic()
        try:
            resp = http.request(method, self.url + path, **kw)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            answer = Answer(kind, started, time.monotonic() - started, 0, False, False)
            with self.lock:
                self.answers.append(answer)
                self.failures.append(f"{kind}: {type(exc).__name__}")
            return answer
        took = time.monotonic() - started
        body = _json(resp)
        if kind in NOT_CONTRACT:  # an OAuth refusal or an error page is its normal answer
            ok = resp.status_code < 500
        else:
            ok = resp.status_code == 200 and body.get("success") is True
        answer = Answer(kind, started, took, resp.status_code, ok, _shaped(kind, resp, body))
        with self.lock:
            self.answers.append(answer)
        return answer

    def repeat(self, kind: str, method: str, path: str, **kw: object) -> Loop:
        """One request, as the body of a thread's loop."""

        def loop(http: httpx.Client) -> None:
            self.call(http, kind, method, path, **kw)

        return loop

    def run(self, name: str, loop: Loop) -> threading.Thread:
        def body() -> None:
            with httpx.Client(timeout=BOUND * 3) as http:
                while not self.stop.is_set():
                    try:
                        loop(http)
                    except Exception as exc:  # a failed assertion in the loop: reported
                        with self.lock:
                            self.failures.append(f"{name}: {exc!r}")
                        return

        thread = threading.Thread(target=body, name=name, daemon=True)
        thread.start()
        return thread


def _shaped(kind: str, resp: httpx.Response, body: dict[str, object]) -> bool:
    """A 503 with Retry-After, as a page or in the contract's JSON shape; any other refusal
    in the contract's shape (but OAuth's own and error pages)."""
    if resp.status_code == 200:
        return True
    if resp.status_code == 503:
        if not resp.headers.get("retry-after", "").isdigit():
            return False
        if kind in PAGES:
            return resp.headers.get("content-type", "").startswith("text/html")
    elif kind in NOT_CONTRACT:
        return True
    return set(body) == {"success", "error"} and body["success"] is False


def _json(resp: httpx.Response) -> dict[str, object]:
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def create_user(url: str, name: str) -> None:
    resp = httpx.post(
        f"{url}/v1/api-user-create",
        json={
            "name": name.title(),
            "username": f"{name}-restart",
            "email": f"{name}@example.com",
            "password": PASSWORD,
            "privacyPolicy": True,
        },
        timeout=10,
    )
    assert resp.status_code == 200 and resp.json()["success"] is True, resp.text


def newest_code(mail_dir: Path, to: str, seen: set[str]) -> str | None:
    """The code of the newest reset mail to `to` if it came since the last call (the older
    ones, whose codes it revoked, are passed over)."""
    code = None
    for path in list_messages(mail_dir):  # newest first
        if path.name in seen:
            break
        seen.add(path.name)
        with path.open("rb") as fh:
            msg = BytesParser(policy=policy.default).parse(fh)
        if code is None and msg["To"] == to and "reset code" in str(msg["Subject"]):
            part = msg.get_body(preferencelist=("plain",))
            found = CODE_LINE.search(part.get_content()) if part is not None else None
            code = found.group(1) if found else None
    return code


@dataclass
class Resetter:
    """Whole resets for one account, one after another: ask, wait for the mail, reset.

    An answer lost to the outage (a 503) leaves the reset undecided from outside; the
    next sign-in decides it, and it must be all or nothing: either the new password works
    or the old one does."""

    traffic: Traffic
    mail_dir: Path
    email: str
    username: str
    password: str = PASSWORD
    done: list[float] = field(default_factory=list)  # when each reset succeeded
    seen: set[str] = field(default_factory=set)
    n: int = 0

    def __call__(self, http: httpx.Client) -> None:
        t = self.traffic
        t.call(http, "request", "POST", "/v1/api-user-request-reset-password", json={
            "email": self.email})  # fmt: skip
        code = None
        deadline = time.monotonic() + 2
        while code is None and time.monotonic() < deadline and not t.stop.is_set():
            time.sleep(0.05)
            code = newest_code(self.mail_dir, self.email, self.seen)
        if code is None:
            return
        self.n += 1
        new = f"{PASSWORD} {self.n}"
        answer = t.call(http, "reset", "POST", "/v1/api-user-reset-password", json={
            "email": self.email, "code": code, "newPassword": new})  # fmt: skip
        if answer.ok:
            self.password = new
            self.done.append(answer.at)
        elif answer.status == 503:
            self.password = self.decide(http, new)

    def decide(self, http: httpx.Client, new: str) -> str:
        """Which password an undecided reset left: exactly one of the two signs in."""
        while not self.traffic.stop.is_set():
            took_new = self.traffic.call(http, "login", "POST", "/v1/api-login", json={
                "username": self.username, "password": new})  # fmt: skip
            if took_new.status == 503:
                time.sleep(0.2)
                continue
            took_old = self.traffic.call(http, "login", "POST", "/v1/api-login", json={
                "username": self.username, "password": self.password})  # fmt: skip
            if took_old.status == 503:
                continue
            assert took_new.ok != took_old.ok, "both or neither password sign in"
            return new if took_new.ok else self.password
        return self.password
