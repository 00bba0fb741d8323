"""The controller's decision about a host's served certificate
(pisec_certificate_due, used by roles/pisec_host_cert/tasks/due.yml): what
the host reports is parsed here, once per use, and every use in a run
agrees, also inside the jitter window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization

from plugins.filter.pisec_pki import certificate_due
from tests.certs import Pair, build, name, new_key

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _ca(common_name: str) -> Pair:
    return build(
        name(common_name),
        new_key("p256"),
        ca=True,
        path_length=0,
        not_before=NOW - timedelta(days=30),
        not_after=NOW + timedelta(days=3000),
    )


def _pem(pair: Pair) -> str:
    return pair.certificate.public_bytes(serialization.Encoding.PEM).decode()


def _leaf(ca: Pair, days_left: float, lifetime: float = 90, kind: str = "p256") -> str:
    return _pem(
        build(
            name("pi"),
            new_key(kind),
            issuer=ca,
            not_before=NOW - timedelta(days=lifetime - days_left),
            not_after=NOW + timedelta(days=days_left),
        )
    )


def _decide(certificate: str, ca: Pair | None, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "key_type": "ecdsa",
        "key_curve": "secp256r1",
        "key_size": 3072,
        "fraction_left": 1 / 3,
        "jitter": 0.0,
        "force": False,
        "new_key_on_renewal": True,
        "now": NOW,
    }
    values.update(overrides)
    return certificate_due(certificate, _pem(ca) if ca else "", **values)


def test_fresh_due_and_expired_certificates() -> None:
    ca = _ca("pisec fleet CA")
    fresh = _decide(_leaf(ca, 80), ca)
    assert fresh["due"] is False and fresh["new_key"] is False and len(fresh["serial"]) >= 2
    assert _decide(_leaf(ca, 20), ca) | {"serial": ""} == {
        "due": True,
        "new_key": True,
        "serial": "",
    }
    assert _decide(_leaf(ca, -1), ca)["due"] is True
    not_yet = build(
        name("pi"),
        new_key("p256"),
        issuer=ca,
        not_before=NOW + timedelta(days=1),
        not_after=NOW + timedelta(days=91),
    )
    assert _decide(_pem(not_yet), ca)["due"] is True
    assert _decide(_leaf(ca, 20), ca, new_key_on_renewal="false")["new_key"] is False
    assert _decide(_leaf(ca, 80), ca, force="yes")["due"] is True


def test_a_certificate_of_another_ca_or_key_kind_is_due_with_a_new_key() -> None:
    ca, next_ca = _ca("pisec fleet CA"), _ca("pisec fleet CA G2")
    # After a rollover's switch, the CA that signs now is another one.
    assert _decide(_leaf(ca, 80), next_ca)["due"] is True
    # Before the CA is published (a dry run), the issuer counts as current.
    assert _decide(_leaf(ca, 80), None)["due"] is False
    for kind, asked in (("p384", {}), ("rsa2048", {}), ("p256", {"key_type": "rsa"})):
        decided = _decide(_leaf(ca, 80, kind=kind), ca, **asked)
        assert decided["due"] is True and decided["new_key"] is True, kind
    assert _decide(_leaf(ca, 80, kind="rsa2048"), ca, key_type="rsa", key_size=2048)["due"] is False


def test_what_is_not_a_certificate_is_replaced_and_nothing_is_not_due() -> None:
    ca = _ca("pisec fleet CA")
    for forged in ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "é", "x"):
        assert _decide(forged, ca) == {"due": True, "new_key": True, "serial": ""}
    assert _decide("", ca) == {"due": False, "new_key": False, "serial": ""}


def test_inside_the_jitter_window_every_use_agrees_and_the_fleet_spreads() -> None:
    """With 5 % jitter, a certificate with 36 % of its lifetime left may or
    may not be due: the answer is the same every time it is asked that day
    (due, new key and the keep request cannot disagree), and certificates
    of a fleet do not all decide alike."""
    ca = _ca("pisec fleet CA")
    answers = []
    for _ in range(40):
        leaf = _leaf(ca, 90 * 0.36)
        decided = {_decide(leaf, ca, jitter=0.05)["due"] for _ in range(20)}
        assert len(decided) == 1
        answers.append(decided.pop())
    assert True in answers and False in answers
    # Outside the window, jitter changes nothing.
    assert _decide(_leaf(ca, 90 * 0.4), ca, jitter=0.05)["due"] is False
    assert _decide(_leaf(ca, 90 * 0.33), ca, jitter=0.0)["due"] is True


def test_hosts_and_devices_are_renewed_by_one_rule() -> None:
    """The CA's device bundles (pisec_ca_policy.renewal_due, on the CA
    host) and the hosts' certificates (this filter, on the controller)
    decide alike, jitter included: both are pisec.rules'."""
    from cryptography import x509

    from tests.conftest import load_module_utils

    policy = load_module_utils("pisec_ca_policy")
    ca = _ca("pisec fleet CA")
    answers = set()
    for _ in range(40):
        leaf = _leaf(ca, 90 * 0.36)
        certificate = x509.load_pem_x509_certificate(leaf.encode())
        host = _decide(leaf, ca, jitter=0.05)["due"]
        device = policy.renewal_due(certificate, NOW, 1 / 3, 0.05, False)
        assert host == device
        answers.add(host)
    assert answers == {True, False}
