"""The CA issues what the controller decides, whatever a host's CSR asks for.

Each test plays root on a Pi: the CSR (and the "current certificate") the
host reports is made up by the attacker, with the Pi's own key, so that
proof of possession holds and only the policy stands in the way. Runs the
module's own function (pisec_ca_issue.issue) against a CA directory laid
out as pisec_ca lays it out.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import (
    CA_PASSPHRASE,
    csr_pem,
    key_usage,
    load_module_utils,
    load_plugin_module,
    make_csr,
    make_leaf,
    write_ca_dir,
)

issue_module: Any = load_plugin_module("pisec_ca_issue")
policy: Any = load_module_utils("pisec_ca_policy")

SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
BROKER_SANS = ["DNS:pisec-broker", "IP:192.0.2.10"]


def dns(name: str) -> x509.GeneralName:
    return x509.DNSName(name)


def ip(address: str) -> x509.GeneralName:
    return x509.IPAddress(ipaddress.ip_address(address))


def params(ca_dir: Path, csr: str, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "dir": str(ca_dir),
        "passphrase": CA_PASSPHRASE,
        "host": "pisec-dev-a",
        "csr": csr,
        "common_name": "pisec-dev-a",
        "subject_alt_names": [],
        "extended_key_usage": "clientAuth",
        "key_type": "ecdsa",
        "key_curve": "secp256r1",
        "key_size": 3072,
        "min_rsa_key_size": 2048,
        "validity_days": 365,
        "max_validity_days": 825,
        "not_before": "-10m",
        "existing": "",
        "renew": False,
    }
    values.update(overrides)
    return values


def broker_params(ca_dir: Path, csr: str, **overrides: Any) -> dict[str, Any]:
    return params(
        ca_dir,
        csr,
        host="pisec-broker",
        common_name="pisec-broker",
        subject_alt_names=BROKER_SANS,
        extended_key_usage="serverAuth",
        **overrides,
    )


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    write_ca_dir(tmp_path / "ca")
    return tmp_path / "ca"


@pytest.fixture
def pi_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def issued(ca_dir: Path) -> list[str]:
    return sorted(path.name for path in (ca_dir / "issued").iterdir())


def refused(ca_dir: Path, values: dict[str, Any]) -> Any:
    before = issued(ca_dir)
    with pytest.raises(policy.RequestRefusedError) as caught:
        issue_module.issue(values, False)
    assert issued(ca_dir) == before, "a refused request must leave no record"
    return caught.value


def certificate(result: dict[str, Any]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(result["certificate"].encode())


def test_an_honest_broker_request_gets_exactly_the_profile(ca_dir: Path, pi_key: Any) -> None:
    csr = make_csr(
        pi_key,
        "pisec-broker",
        sans=[dns("pisec-broker"), ip("192.0.2.10")],
        purposes=[SERVER],
        ca=False,
        usage=key_usage(digital_signature=True),
    )
    result = issue_module.issue(broker_params(ca_dir, csr_pem(csr)), False)
    cert = certificate(result)
    ca = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    assert result["changed"] and not result["kept"]
    assert cert.subject == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pisec-broker")])
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)
    extensions = cert.extensions
    assert list(extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [SERVER]
    sans = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["pisec-broker"]
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["192.0.2.10"]
    basic = extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and not basic.value.ca
    usage = extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    assert issued(ca_dir) == [f"{result['serial']}.pem"]
    assert (ca_dir / "issued" / f"{result['serial']}.pem").stat().st_mode & 0o777 == 0o600


def test_a_request_asking_for_less_still_gets_the_profile(ca_dir: Path, pi_key: Any) -> None:
    # The CA builds the certificate from the profile, not from the request.
    result = issue_module.issue(
        broker_params(ca_dir, csr_pem(make_csr(pi_key, "pisec-broker"))), False
    )
    cert = certificate(result)
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [SERVER]
    assert cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.DNSName) == ["pisec-broker"]


def test_a_device_forging_the_brokers_request_is_refused_naming_every_field(
    ca_dir: Path, pi_key: Any
) -> None:
    forged = make_csr(
        pi_key,
        "pisec-broker",
        sans=[dns("pisec-broker"), ip("192.0.2.10")],
        purposes=[SERVER, CLIENT],
    )
    error = refused(ca_dir, params(ca_dir, csr_pem(forged)))
    assert error.fields == ["subject", "subjectAltName", "extendedKeyUsage"]
    text = str(error)
    assert "subject asks for CN=pisec-broker, the inventory gives CN=pisec-dev-a" in text
    assert "subjectAltName asks for DNS:pisec-broker, IP:192.0.2.10" in text
    assert "extendedKeyUsage asks for serverAuth, this host gets clientAuth only" in text


def test_a_device_forging_another_devices_name_is_refused(ca_dir: Path, pi_key: Any) -> None:
    forged = make_csr(pi_key, "pisec-dev-b", purposes=[CLIENT])
    assert refused(ca_dir, params(ca_dir, csr_pem(forged))).fields == ["subject"]


def test_a_broker_forging_another_name_or_a_client_purpose_is_refused(
    ca_dir: Path, pi_key: Any
) -> None:
    extra_name = make_csr(
        pi_key,
        "pisec-broker",
        sans=[dns("pisec-broker"), dns("mqtt.example.org")],
        purposes=[SERVER],
    )
    error = refused(ca_dir, broker_params(ca_dir, csr_pem(extra_name)))
    assert error.fields == ["subjectAltName"]
    assert (
        "asks for DNS:mqtt.example.org, the inventory gives DNS:pisec-broker, IP:192.0.2.10"
        in str(error)
    )
    both = make_csr(pi_key, "pisec-broker", purposes=[SERVER, CLIENT])
    assert refused(ca_dir, broker_params(ca_dir, csr_pem(both))).fields == ["extendedKeyUsage"]


@pytest.mark.parametrize(
    ("forgery", "field"),
    [
        ({"ca": True}, "basicConstraints"),
        ({"usage": key_usage(digital_signature=True, key_cert_sign=True)}, "keyUsage"),
        ({"usage": key_usage(crl_sign=True)}, "keyUsage"),
        ({"sans": [x509.RFC822Name("a@example.org")]}, "subjectAltName"),
        ({"sans": [x509.UniformResourceIdentifier("https://example.org")]}, "subjectAltName"),
        ({"sans": [dns("pisec-dev-a")]}, "subjectAltName"),
        ({"extensions": (x509.OCSPNoCheck(),)}, "OCSPNoCheck"),
        (
            {
                "extensions": (
                    x509.NameConstraints(permitted_subtrees=[dns("x.org")], excluded_subtrees=None),
                )
            },
            "nameConstraints",
        ),
        ({"purposes": [ExtendedKeyUsageOID.CODE_SIGNING]}, "extendedKeyUsage"),
    ],
    ids=[
        "ca-true",
        "key-cert-sign",
        "crl-sign",
        "email-san",
        "uri-san",
        "own-name-on-a-client",
        "unknown-extension",
        "name-constraints",
        "code-signing",
    ],
)
def test_each_policy_check_refuses_a_device_request(
    ca_dir: Path, pi_key: Any, forgery: dict[str, Any], field: str
) -> None:
    forged = make_csr(pi_key, "pisec-dev-a", **forgery)
    assert refused(ca_dir, params(ca_dir, csr_pem(forged))).fields == [field]


def test_a_request_without_proof_of_possession_is_refused(ca_dir: Path, pi_key: Any) -> None:
    der = bytearray(make_csr(pi_key, "pisec-dev-a").public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # the last byte of the signature
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()
    error = refused(ca_dir, params(ca_dir, tampered))
    assert error.fields == ["signature"]


@pytest.mark.parametrize(
    ("key", "overrides", "wanted"),
    [
        (
            lambda: ec.generate_private_key(ec.SECP384R1()),
            {},
            "is ECDSA secp384r1, the inventory asks for secp256r1",
        ),
        (
            lambda: rsa.generate_private_key(65537, 2048),
            {},
            "is RSA 2048, the inventory asks for ECDSA",
        ),
        (
            lambda: rsa.generate_private_key(65537, 1024),
            {"key_type": "rsa", "key_size": 2048},
            "below pisec_ca_min_rsa_key_size 2048",
        ),
        (
            lambda: rsa.generate_private_key(65537, 2048),
            {"key_type": "rsa", "key_size": 3072},
            "is RSA 2048, the inventory asks for RSA 3072",
        ),
    ],
    ids=["wrong-curve", "rsa-for-ecdsa", "rsa-1024", "rsa-smaller"],
)
def test_a_key_of_another_kind_is_refused(
    ca_dir: Path, key: Any, overrides: dict[str, Any], wanted: str
) -> None:
    forged = make_csr(key(), "pisec-dev-a")
    error = refused(ca_dir, params(ca_dir, csr_pem(forged), **overrides))
    assert error.fields == ["public key"]
    assert wanted in str(error)


def test_garbage_is_refused_as_a_request(ca_dir: Path) -> None:
    assert refused(
        ca_dir, params(ca_dir, "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n")
    ).fields == ["request"]


def test_a_revoked_identity_is_refused(ca_dir: Path, pi_key: Any) -> None:
    revoked = ca_dir.parent / "ca.revoked.yml"
    revoked.write_text(
        "- serial: '01'\n  issuer: 'AA'\n  cn: pisec-dev-a\n  reason: key_compromise\n"
        "  revoked_at: '20260101000000Z'\n"
    )
    csr = csr_pem(make_csr(pi_key, "pisec-dev-a", purposes=[CLIENT]))
    assert refused(ca_dir, params(ca_dir, csr)).fields == ["identity"]
    # Re-admitted: issued again.
    revoked.write_text(revoked.read_text() + "  readmitted: true\n")
    assert issue_module.issue(params(ca_dir, csr), False)["changed"]


def test_the_current_certificate_is_kept_only_when_the_ca_recorded_it(
    ca_dir: Path, pi_key: Any
) -> None:
    csr = csr_pem(make_csr(pi_key, "pisec-dev-a", purposes=[CLIENT]))
    first = issue_module.issue(params(ca_dir, csr), False)
    again = issue_module.issue(params(ca_dir, csr, existing=first["certificate"]), False)
    assert again == {**first, "changed": False, "kept": True}
    assert len(issued(ca_dir)) == 1

    # Due: a new one.
    renewed = issue_module.issue(
        params(ca_dir, csr, existing=first["certificate"], renew=True), False
    )
    assert renewed["changed"] and renewed["serial"] != first["serial"]

    # A certificate the host made up itself (self-signed under the CA's name)
    # is never "kept": the CA issues one from its own profile.
    ca = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    rogue_ca = write_ca_dir(
        ca_dir.parent / "rogue", name=ca.subject.rfc4514_string().split("=", 1)[1]
    )
    forged = make_leaf(rogue_ca, "pisec-dev-a", CLIENT)
    result = issue_module.issue(
        params(
            ca_dir,
            csr,
            existing=forged.certificate.public_bytes(serialization.Encoding.PEM).decode(),
        ),
        False,
    )
    assert result["changed"] and not result["kept"]

    # Signed by this CA but missing from its record: not kept either.
    unrecorded = renewed["serial"]
    (ca_dir / "issued" / f"{unrecorded}.pem").unlink()
    result = issue_module.issue(params(ca_dir, csr, existing=renewed["certificate"]), False)
    assert not result["kept"]


def test_a_kept_certificate_must_match_the_profile_and_the_key(ca_dir: Path, pi_key: Any) -> None:
    csr = csr_pem(make_csr(pi_key, "pisec-dev-a"))
    first = issue_module.issue(params(ca_dir, csr), False)
    other_key = csr_pem(make_csr(ec.generate_private_key(ec.SECP256R1()), "pisec-dev-a"))
    assert not issue_module.issue(params(ca_dir, other_key, existing=first["certificate"]), False)[
        "kept"
    ]
    # The inventory changed what this host's certificate says: a new one.
    server = issue_module.issue(
        params(
            ca_dir,
            csr,
            existing=first["certificate"],
            extended_key_usage="serverAuth",
            subject_alt_names=["DNS:pisec-dev-a"],
        ),
        False,
    )
    assert server["changed"] and not server["kept"]
    assert list(
        certificate(server).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    ) == [SERVER]


def test_a_dry_run_signs_and_records_nothing(ca_dir: Path, pi_key: Any) -> None:
    result = issue_module.issue(params(ca_dir, csr_pem(make_csr(pi_key, "pisec-dev-a"))), True)
    assert result == {"changed": True, "kept": False, "certificate": "", "serial": ""}
    assert issued(ca_dir) == []


def test_no_leaf_outlives_its_ca(ca_dir: Path, pi_key: Any) -> None:
    ca = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    result = issue_module.issue(params(ca_dir, csr_pem(make_csr(pi_key, "pisec-dev-a"))), False)
    assert certificate(result).not_valid_after_utc == ca.not_valid_after_utc.replace(microsecond=0)
    start = certificate(result).not_valid_before_utc
    assert timedelta(minutes=9) < datetime.now(UTC) - start < timedelta(minutes=11)


@pytest.mark.parametrize(
    ("overrides", "wanted"),
    [
        ({"common_name": "pisec-dev-a\n"}, "common name 'pisec-dev-a\\n' is neither"),
        ({"common_name": "a/b"}, "common name 'a/b' is neither"),
        (
            {"subject_alt_names": ["DNS:pisec-dev-a"]},
            "client certificates carry no subject alternative",
        ),
        (
            {"extended_key_usage": "serverAuth", "subject_alt_names": ["DNS:x\n"]},
            "'DNS:x\\n' is not a valid",
        ),
        ({"validity_days": 900}, "outside 1..825"),
        ({"not_before": "+10m"}, "'+10m' is not a relative time before now"),
    ],
    ids=["cn-newline", "cn-slash", "client-san", "san-newline", "too-long", "future-start"],
)
def test_bad_controller_values_are_errors(
    ca_dir: Path, pi_key: Any, overrides: dict[str, Any], wanted: str
) -> None:
    with pytest.raises(ValueError, match=None) as caught:
        issue_module.issue(
            params(ca_dir, csr_pem(make_csr(pi_key, "pisec-dev-a")), **overrides), False
        )
    assert wanted in str(caught.value)
    assert issued(ca_dir) == []


def _public_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_without_a_request_the_ca_only_decides_whether_it_keeps(ca_dir: Path, pi_key: Any) -> None:
    """A converged host's rerun: the CA keeps the served certificate for the
    public key the host reports, and signs nothing without a request."""
    csr = csr_pem(make_csr(pi_key, "pisec-dev-a", purposes=[CLIENT]))
    first = issue_module.issue(params(ca_dir, csr), False)
    keep = params(ca_dir, "", public_key=_public_pem(pi_key), existing=first["certificate"])
    assert issue_module.issue(keep, False) == {**first, "changed": False, "kept": True}
    assert issue_module.issue(keep, True)["kept"]
    assert len(issued(ca_dir)) == 1


class Forgeries(NamedTuple):
    """What a forged report is made of: the honest host's issued result,
    another host's issued result and key, and a certificate for the honest
    host's name under a look-alike CA (same subject, other key)."""

    mine: dict[str, Any]
    other: dict[str, Any]
    other_key: ec.EllipticCurvePrivateKey
    made_up: str


def _forgeries(ca_dir: Path, pi_key: Any) -> Forgeries:
    mine = issue_module.issue(
        params(ca_dir, csr_pem(make_csr(pi_key, "pisec-dev-a", purposes=[CLIENT]))), False
    )
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = issue_module.issue(
        params(
            ca_dir,
            csr_pem(make_csr(other_key, "pisec-dev-b", purposes=[CLIENT])),
            host="pisec-dev-b",
            common_name="pisec-dev-b",
        ),
        False,
    )
    ca = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    rogue_ca = write_ca_dir(
        ca_dir.parent / "rogue", name=ca.subject.rfc4514_string().split("=", 1)[1]
    )
    made_up = (
        make_leaf(rogue_ca, "pisec-dev-a", CLIENT)
        .certificate.public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    return Forgeries(mine, other, other_key, made_up)


def test_a_forged_report_never_gets_a_certificate_kept_or_signed(ca_dir: Path, pi_key: Any) -> None:
    """What a host reports without a request (its certificate, its public
    key) is forged here every way that matters: nothing is kept that the CA
    would not keep with a request, and nothing is ever signed."""
    nothing = {"changed": False, "kept": False, "certificate": "", "serial": ""}
    forged = _forgeries(ca_dir, pi_key)
    mine, other, other_key, made_up = (
        forged.mine["certificate"],
        forged.other["certificate"],
        forged.other_key,
        forged.made_up,
    )
    before = issued(ca_dir)
    forgeries = {
        "another host's recorded certificate, with its key": (other, _public_pem(other_key)),
        "its own certificate with another key": (mine, _public_pem(other_key)),
        "a certificate under a look-alike CA": (made_up, _public_pem(pi_key)),
        "a public key that is not one": (mine, "-----BEGIN PUBLIC KEY-----\nAAAA\n"),
        "a certificate that is not one": ("-----BEGIN CERTIFICATE-----\n", _public_pem(pi_key)),
        "no public key": (mine, ""),
        "no certificate": ("", _public_pem(pi_key)),
    }
    for what, (existing, public_key) in forgeries.items():
        result = issue_module.issue(
            params(ca_dir, "", public_key=public_key, existing=existing), False
        )
        assert result == nothing, what
    # Due, or asked for a server certificate: not kept, and still nothing signed.
    honest = params(ca_dir, "", public_key=_public_pem(pi_key), existing=mine)
    assert issue_module.issue({**honest, "renew": True}, False) == nothing
    assert (
        issue_module.issue(
            {
                **honest,
                "extended_key_usage": "serverAuth",
                "subject_alt_names": ["DNS:pisec-dev-a"],
            },
            False,
        )
        == nothing
    )
    assert issued(ca_dir) == before
    # A revoked identity is refused outright, with or without a request.
    (ca_dir.parent / "ca.revoked.yml").write_text(
        "- serial: '01'\n  issuer: 'AA'\n  cn: pisec-dev-a\n  reason: key_compromise\n"
        "  revoked_at: '20260101000000Z'\n"
    )
    assert refused(ca_dir, honest).fields == ["identity"]


keep_module: Any = load_plugin_module("pisec_ca_keep")


def _keep_request(
    request_id: str, existing: str, public_key: str, **profile: Any
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": request_id,
        "common_name": "pisec-dev-a",
        "subject_alt_names": [],
        "extended_key_usage": "clientAuth",
        "key_type": "ecdsa",
        "key_curve": "secp256r1",
        "key_size": 3072,
        "public_key": public_key,
        "existing": existing,
    }
    values.update(profile)
    return values


def test_the_fleet_keep_decision_is_the_one_host_decision_for_every_forgery(
    ca_dir: Path, pi_key: Any
) -> None:
    """pisec_ca_keep answers a whole play's keep requests in one run. Each
    answer is the one pisec_ca_issue gives that host without a request: the
    honest host keeps its certificate; every forged report in the same batch
    (another host's certificate with its key, its own with another key, a
    look-alike CA, garbage, empties, a server profile for a client
    certificate, a profile the CA would never issue) keeps nothing; nothing
    is signed or recorded."""
    now = datetime.now(UTC)
    forged = _forgeries(ca_dir, pi_key)
    mine, other, other_key, made_up = forged.mine, forged.other, forged.other_key, forged.made_up
    own, others = _public_pem(pi_key), _public_pem(other_key)
    requests = [
        _keep_request("honest", mine["certificate"], own),
        _keep_request("b-honest", other["certificate"], others, common_name="pisec-dev-b"),
        _keep_request("b's certificate and key as a", other["certificate"], others),
        _keep_request("own certificate, other key", mine["certificate"], others),
        _keep_request("look-alike CA", made_up, own),
        _keep_request("not a key", mine["certificate"], "-----BEGIN PUBLIC KEY-----\nAAAA\n"),
        _keep_request("not a certificate", "-----BEGIN CERTIFICATE-----\n", own),
        _keep_request("no key", mine["certificate"], ""),
        _keep_request("no certificate", "", own),
        _keep_request(
            "server profile",
            mine["certificate"],
            own,
            extended_key_usage="serverAuth",
            subject_alt_names=["DNS:pisec-dev-a"],
        ),
        _keep_request("bad curve", mine["certificate"], own, key_curve="secp1r1"),
        _keep_request("bad name", mine["certificate"], own, common_name="pisec dev a\n"),
    ]
    before = issued(ca_dir)
    answer = keep_module.decide(str(ca_dir), requests, now)
    assert answer == {
        "changed": False,
        "kept": ["b-honest", "honest"],
        "serials": {"honest": mine["serial"], "b-honest": other["serial"]},
    }
    assert issued(ca_dir) == before
    # The same decisions, host by host, as pisec_ca_issue without a request.
    for request in requests[2:10]:
        single = params(
            ca_dir,
            "",
            public_key=request["public_key"],
            existing=request["existing"],
            extended_key_usage=request["extended_key_usage"],
            subject_alt_names=request["subject_alt_names"],
        )
        assert issue_module.issue(single, False)["kept"] is False, request["id"]
    # A repeated id is answered by its first request only (a later forged
    # duplicate cannot take over an honest answer, or the other way round).
    duplicate = keep_module.decide(str(ca_dir), [requests[3] | {"id": "honest"}, requests[0]], now)
    assert duplicate["kept"] == []


def test_the_fleet_keep_decision_keeps_nothing_revoked_or_expired(
    ca_dir: Path, pi_key: Any
) -> None:
    """A revoked identity keeps nothing (and gets no error: it makes no
    request); a certificate past its end keeps nothing."""
    mine = issue_module.issue(
        params(ca_dir, csr_pem(make_csr(pi_key, "pisec-dev-a", purposes=[CLIENT]))), False
    )
    request = _keep_request("a", mine["certificate"], _public_pem(pi_key))
    later = datetime.now(UTC) + timedelta(days=400)
    assert keep_module.decide(str(ca_dir), [request], later)["kept"] == []
    (ca_dir.parent / "ca.revoked.yml").write_text(
        "- serial: '01'\n  issuer: 'AA'\n  cn: pisec-dev-a\n  reason: key_compromise\n"
        "  revoked_at: '20260101000000Z'\n"
    )
    assert keep_module.decide(str(ca_dir), [request], datetime.now(UTC))["kept"] == []
