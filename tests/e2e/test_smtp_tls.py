"""SMTP with credentials: TLS is required and verified, or the password is never sent.

Threat (issue 8, "SMTP downgrade"): a network attacker between Relatch and its relay
strips STARTTLS from the EHLO answer; a client that only upgrades when offered then sends
AUTH, and every mail after it, in clear: the relay password and every reset code. A real
aiosmtpd stands for the relay; a certificate authority made in the test stands for a
private CA (RELATCH_SMTP_CA_FILE).
"""

from __future__ import annotations

import gc
import ipaddress
import logging
import ssl
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from relatch.core.meta import RequestMeta
from relatch.mail import transports, worker
from relatch.services import reset_requests
from relatch.services.context import Services
from relatch.settings import Settings
from relatch.storage.models import OutboxMessage
from tests.conftest import FakeClock
from tests.e2e.servers import SMTPInbox, free_port

USER = "mailer"
PASSWORD = "relay-pass-7Hq2"  # a test credential: must never reach a log


@dataclass
class PrivateCA:
    ca_file: Path
    server_context: ssl.SSLContext


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    """A private CA and a server certificate it signed for 127.0.0.1 and localhost."""
    folder = tmp_path_factory.mktemp("ca")
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Relatch test CA"))
        .issuer_name(_name("Relatch test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file = folder / "server.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file = folder / "server.key"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return PrivateCA(ca_file=ca_file, server_context=context)


class Relay(SMTPInbox):
    """What the relay saw: each AUTH command, and whether it came over TLS."""

    def __init__(self, port: int) -> None:
        super().__init__(port=port)
        self.auths: list[bool] = []

    def authenticate(
        self, _server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        return AuthResult(success=ok)


class RecordingController(Controller):
    """An aiosmtpd controller whose sessions record every AUTH command in the relay."""

    def factory(self) -> SMTP:
        relay: Relay = self.handler

        class RecordingSMTP(SMTP):
            async def smtp_AUTH(self, arg: str) -> None:  # noqa: N802
                over_tls = self.transport is not None and bool(
                    self.transport.get_extra_info("ssl_object")
                )
                relay.auths.append(over_tls)
                await super().smtp_AUTH(arg)

        return RecordingSMTP(self.handler, **self.SMTP_kwargs)


@pytest.fixture
def relay_factory() -> Iterator[Any]:
    controllers: list[Controller] = []

    def start(
        tls_context: ssl.SSLContext | None = None, implicit: ssl.SSLContext | None = None
    ) -> Relay:
        relay = Relay(port=free_port())
        controller = RecordingController(
            relay,
            hostname="127.0.0.1",
            port=relay.port,
            ssl_context=implicit,
            tls_context=tls_context,
            authenticator=relay.authenticate,
            # The relay itself would take AUTH in clear: the client must refuse to send it.
            auth_require_tls=False,
        )
        controller.start()
        controllers.append(controller)
        return relay

    yield start
    for controller in controllers:
        controller.stop()


def queue_reset_mail(svc: Services, make_account: Any) -> str:
    acct = make_account()
    reset_requests.request_reset(svc, acct.email, RequestMeta())
    assert reset_requests.process_requests(svc) == 1
    return str(acct.email)


def the_row(svc: Services) -> OutboxMessage:
    with svc.sessions() as s:
        (row,) = s.scalars(select(OutboxMessage))
        return row


def deliver(svc: Services, url: str, ca_file: Path | None = None) -> int:
    extra = {"ca_file": ca_file} if ca_file is not None else {}
    transport = worker.SMTPTransport(url, timeout=5, **extra)
    return anyio.run(worker.deliver_due, svc, transport)


def url(relay: Relay, scheme: str = "smtp", credentials: bool = True) -> str:
    who = f"{USER}:{PASSWORD}@" if credentials else ""
    return f"{scheme}://{who}127.0.0.1:{relay.port}"


def test_no_starttls_offered_means_no_auth_and_the_mail_stays_queued(
    svc: Services,
    make_account: Any,
    relay_factory: Any,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    relay = relay_factory()  # a relay (or an attacker) that offers no STARTTLS
    caplog.set_level(logging.INFO)
    queue_reset_mail(svc, make_account)
    assert deliver(svc, url(relay)) == 0
    assert relay.auths == []  # the password never went over the wire
    assert relay.messages == []  # nor did the code
    row = the_row(svc)
    # Queued, not abandoned: retried with backoff like any failed try.
    assert row.status == "pending" and row.attempts == 1
    assert row.next_attempt_at > clock.now
    assert row.last_error and "STARTTLS" in row.last_error
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("TLS" in r.getMessage() and "AUTH" in r.getMessage() for r in warned)
    assert PASSWORD not in caplog.text and PASSWORD not in row.last_error
    # Retried, and still never sent in clear.
    clock.advance(worker.backoff(1))
    assert deliver(svc, url(relay)) == 0
    assert relay.auths == [] and the_row(svc).attempts == 2
    assert the_row(svc).status == "pending"


def test_starttls_with_private_ca_delivers_with_auth_over_tls(
    svc: Services, make_account: Any, relay_factory: Any, test_ca: PrivateCA
) -> None:
    relay = relay_factory(tls_context=test_ca.server_context)
    email = queue_reset_mail(svc, make_account)
    assert deliver(svc, url(relay), ca_file=test_ca.ca_file) == 1
    assert relay.auths == [True]  # AUTH once, after the TLS upgrade
    (msg,) = relay.messages
    assert msg["To"] == email
    assert the_row(svc).status == "sent"


def test_unverified_certificate_is_refused_and_the_mail_stays_queued(
    svc: Services,
    make_account: Any,
    relay_factory: Any,
    test_ca: PrivateCA,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Without the CA file the relay's certificate cannot be verified: an attacker with
    # a self-made certificate looks exactly like this.
    relay = relay_factory(tls_context=test_ca.server_context)
    queue_reset_mail(svc, make_account)
    assert deliver(svc, url(relay)) == 0
    assert relay.auths == [] and relay.messages == []
    row = the_row(svc)
    assert row.status == "pending" and row.attempts == 1
    assert row.last_error and "certificate" in row.last_error.lower()
    assert PASSWORD not in caplog.text


def test_a_pass_keeps_one_verified_tls_connection_and_authenticates_once(
    svc: Services, make_account: Any, relay_factory: Any, test_ca: PrivateCA
) -> None:
    # Issue 12: the connection is kept for the whole pass, upgraded and verified once.
    relay = relay_factory(tls_context=test_ca.server_context)
    emails = {queue_reset_mail(svc, make_account) for _ in range(3)}
    assert deliver(svc, url(relay), ca_file=test_ca.ca_file) == 3
    assert relay.auths == [True]  # one AUTH, over TLS, for the three mails
    assert {str(m["To"]) for m in relay.messages} == emails


def test_smtps_with_private_ca_delivers(
    svc: Services, make_account: Any, relay_factory: Any, test_ca: PrivateCA
) -> None:
    relay = relay_factory(implicit=test_ca.server_context)
    queue_reset_mail(svc, make_account)
    assert deliver(svc, url(relay, "smtps"), ca_file=test_ca.ca_file) == 1
    assert relay.auths == [True] and len(relay.messages) == 1


def test_smtps_without_the_ca_is_refused(
    svc: Services, make_account: Any, relay_factory: Any, test_ca: PrivateCA
) -> None:
    relay = relay_factory(implicit=test_ca.server_context)
    queue_reset_mail(svc, make_account)
    assert deliver(svc, url(relay, "smtps")) == 0
    assert relay.auths == [] and relay.messages == []
    assert the_row(svc).status == "pending"


def test_without_credentials_starttls_is_opportunistic(
    svc: Services, make_account: Any, relay_factory: Any, test_ca: PrivateCA
) -> None:
    # Documented (README): no credentials, no password to protect; STARTTLS is used (and
    # verified) when offered, and a relay without it gets the mail in clear.
    plain = relay_factory()
    queue_reset_mail(svc, make_account)
    assert deliver(svc, url(plain, credentials=False)) == 1
    assert len(plain.messages) == 1
    tls = relay_factory(tls_context=test_ca.server_context)
    queue_reset_mail(svc, make_account)
    assert deliver(svc, url(tls, credentials=False), ca_file=test_ca.ca_file) == 1
    assert len(tls.messages) == 1 and tls.auths == []


def test_a_failing_send_never_logs_the_password(
    svc: Services,
    make_account: Any,
    relay_factory: Any,
    test_ca: PrivateCA,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    relay = relay_factory(tls_context=test_ca.server_context)
    queue_reset_mail(svc, make_account)
    wrong = f"smtp://{USER}:wrong-{PASSWORD}@127.0.0.1:{relay.port}"
    assert deliver(svc, wrong, ca_file=test_ca.ca_file) == 0
    assert relay.auths == [True]
    assert PASSWORD not in caplog.text
    assert PASSWORD not in (the_row(svc).last_error or "")


def test_a_missing_ca_file_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        Settings(_env_file=None, smtp_ca_file=tmp_path / "typo.pem")  # type: ignore[call-arg]


class SlowToHangUpController(RecordingController):
    """A busy relay: after its 221 to QUIT, its thread is stuck for a while before it
    answers the client's TLS close (close_notify)."""

    def factory(self) -> SMTP:
        class SlowSMTP(SMTP):
            async def smtp_QUIT(self, arg: str) -> None:  # noqa: N802
                await self.push("221 Bye")
                time.sleep(1)  # blocks the relay's event loop: the client's close waits
                await super().smtp_QUIT(arg)  # (a second 221 nobody reads) and hang up

        return SlowSMTP(self.handler, **self.SMTP_kwargs)


@pytest.mark.parametrize("grace", [2.0, 0.1], ids=["orderly-close", "relay-too-slow"])
@pytest.mark.parametrize("scheme", ["smtps", "smtp"])
def test_a_send_leaves_no_socket_open(
    svc: Services,
    make_account: Any,
    test_ca: PrivateCA,
    scheme: str,
    grace: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A socket still open when the send returns is lost for good if the caller's loop
    # ends then (a file descriptor leaked per mail; it made this suite flaky). The relay
    # answers the TLS close after 1 s: within the grace (orderly close), or not (cut).
    monkeypatch.setattr(transports, "CLOSE_GRACE_SECONDS", grace, raising=False)
    relay = Relay(port=free_port())
    tls = {"ssl_context": test_ca.server_context} if scheme == "smtps" else {}
    controller = SlowToHangUpController(
        relay,
        hostname="127.0.0.1",
        port=relay.port,
        tls_context=test_ca.server_context,
        authenticator=relay.authenticate,
        auth_require_tls=False,  # over smtps it does not see the TLS (aiosmtpd checks STARTTLS)
        **tls,
    )
    controller.start()
    try:
        queue_reset_mail(svc, make_account)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert deliver(svc, url(relay, scheme), ca_file=test_ca.ca_file) == 1
            gc.collect()
        assert len(relay.messages) == 1
        assert [str(w.message) for w in caught if w.category is ResourceWarning] == []
    finally:
        controller.stop()
