"""pisec inspect, compared with `openssl x509` on the same files."""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID, NameOID

from pisec import der as pisec_der
from pisec.cli import main
from tests.certs import (
    KEY_KINDS,
    SERVER_AUTH,
    build,
    name,
    new_key,
    openssl_self_signed,
    openssl_sm2,
    server_sans,
)

CA_BUNDLE_DIR = Path("/usr/share/ca-certificates")


def openssl_facts(path: Path, *, der: bool = False) -> dict[str, str]:
    """serial, fingerprint, dates and the -text lines we compare, from openssl."""
    form = ["-inform", "DER"] if der else []
    fields = subprocess.run(
        [
            "openssl",
            "x509",
            *form,
            "-in",
            str(path),
            "-noout",
            "-serial",
            "-fingerprint",
            "-sha256",
            "-startdate",
            "-enddate",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    text = subprocess.run(
        ["openssl", "x509", *form, "-in", str(path), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    facts = dict(line.split("=", 1) for line in fields.strip().splitlines())
    facts["sigalg"] = re.search(r"Signature Algorithm: (\S+)", text).group(1)  # type: ignore[union-attr]
    san = re.search(r"X509v3 Subject Alternative Name:.*\n\s+(.*)\n", text)
    facts["san"] = san.group(1).strip() if san else ""
    return facts


def openssl_date(text: str) -> str:
    moment = datetime.strptime(text.replace("  ", " "), "%b %d %H:%M:%S %Y %Z")
    return moment.replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def inspect_json(capsys: pytest.CaptureFixture[str], *paths: Path) -> list[dict[str, Any]]:
    assert main(["inspect", "--json", *map(str, paths)]) == 0
    data: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return data


def assert_agrees_with_openssl(entry: dict[str, Any], facts: dict[str, str]) -> None:
    assert entry["serial"] == facts["serial"]
    assert entry["fingerprint_sha256"] == facts["sha256 Fingerprint"]
    assert entry["not_before"] == openssl_date(facts["notBefore"])
    assert entry["not_after"] == openssl_date(facts["notAfter"])


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_every_key_type_agrees_with_openssl(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = build(name("test CA", "pisec"), new_key("p256"), ca=True, path_length=0)
    leaf = build(
        name("pi-01"),
        new_key(kind),
        issuer=ca,
        sans=server_sans(),
        eku=SERVER_AUTH,
        serial=0x00FF01,  # a leading zero byte: openssl prints 00FF01
    )
    path, _ = leaf.write(tmp_path, "leaf")
    [entry] = inspect_json(capsys, path)
    facts = openssl_facts(path)
    assert_agrees_with_openssl(entry, facts)
    assert entry["serial"] == "FF01"
    assert entry["signature_algorithm"] == facts["sigalg"] == "ecdsa-with-SHA256"
    assert ", ".join(entry["san"]) == facts["san"]
    assert entry["san"][3] == "IP Address:2001:DB8:0:0:0:0:0:5"
    expected_key = {
        "rsa2048": {"type": "RSA", "bits": 2048, "curve": None},
        "p256": {"type": "EC", "bits": 256, "curve": "P-256"},
        "p384": {"type": "EC", "bits": 384, "curve": "P-384"},
        "ed25519": {"type": "Ed25519", "bits": 256, "curve": None},
        "ed448": {"type": "Ed448", "bits": 456, "curve": None},
        "dsa2048": {"type": "DSA", "bits": 2048, "curve": None},
    }[kind]
    assert entry["public_key"] == expected_key
    assert entry["extended_key_usage"] == ["TLS Web Server Authentication"]
    assert entry["key_usage"] == ["Digital Signature"]
    assert entry["is_ca"] is False and entry["self_signed"] is False
    assert entry["kind"] == "certificate"


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_self_signed_signature_algorithm_matches_openssl(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = build(name(f"{kind} CA"), new_key(kind), ca=True, path_length=1, every_extension=True)
    path, _ = ca.write(tmp_path, "ca")
    [entry] = inspect_json(capsys, path)
    facts = openssl_facts(path)
    assert_agrees_with_openssl(entry, facts)
    assert entry["signature_algorithm"] == facts["sigalg"]
    assert entry["is_ca"] is True and entry["path_length"] == 1
    assert entry["self_signed"] is True
    assert entry["key_usage"] == ["Certificate Sign", "CRL Sign"]
    names = [extension["name"] for extension in entry["extensions"]]
    assert "X509v3 CRL Distribution Points" in names
    assert "X509v3 Name Constraints" in names
    assert "1.3.6.1.4.1.55555.1" in names


def test_text_output_has_openssls_sections(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = build(name("test CA"), new_key("p256"), ca=True, every_extension=True)
    path, _ = ca.write(tmp_path, "ca")
    assert main(["inspect", str(path)]) == 0
    ours = capsys.readouterr().out
    theirs = subprocess.run(
        ["openssl", "x509", "-in", str(path), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in theirs.splitlines():
        stripped = line.strip()
        if re.match(
            r"^(Version|Signature Algorithm|Issuer|Not Before|Not After|Subject|"
            r"Public Key Algorithm|ASN1 OID|NIST CURVE|X509v3 |CA:TRUE|"
            r"Certificate Sign|Full Name|URI:|Permitted|DNS:example)",
            stripped,
        ):
            assert stripped in ours, f"openssl's line {stripped!r} is missing"
    assert "\033[" not in ours  # plain when piped
    assert "self-signed" in ours and "SHA-256 Fingerprint:" in ours


def test_bundle_der_and_csr_in_file_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = build(name("test CA"), new_key("p256"), ca=True)
    leaf = build(name("pi-01"), new_key("rsa2048"), issuer=ca, sans=server_sans())
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(
        leaf.certificate.public_bytes(serialization.Encoding.PEM)
        + b"some text between blocks\n"
        + ca.certificate.public_bytes(serialization.Encoding.PEM)
    )
    der = tmp_path / "ca.der"
    der.write_bytes(ca.certificate.public_bytes(serialization.Encoding.DER))
    key = new_key("p256")
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pi-02")]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("pi-02")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    csr_path = tmp_path / "pi-02.csr"
    csr_path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    entries = inspect_json(capsys, bundle, der, csr_path)
    assert [(e["kind"], e["subject"], e["index"]) for e in entries] == [
        ("certificate", "CN=pi-01", 1),
        ("certificate", "CN=test CA", 2),
        ("certificate", "CN=test CA", 1),
        ("csr", "CN=pi-02", 1),
    ]
    assert_agrees_with_openssl(entries[2], openssl_facts(der, der=True))
    assert entries[3]["san"] == ["DNS:pi-02"] and entries[3]["signature_valid"] is True
    assert entries[3]["serial"] is None and entries[3]["days_left"] is None


def test_days_left_of_an_expired_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    past = datetime(2020, 1, 1, tzinfo=UTC)
    old = build(
        name("old"), new_key("p256"), not_before=past, not_after=datetime(2021, 1, 1, tzinfo=UTC)
    )
    path, _ = old.write(tmp_path, "old")
    [entry] = inspect_json(capsys, path)
    assert entry["days_left"] < -1000
    assert entry["not_after"] == "2021-01-01T00:00:00Z"


def _system_certificates() -> list[Path]:
    return sorted(p for p in CA_BUNDLE_DIR.rglob("*.crt") if p.is_file())


def test_every_system_ca_certificate_agrees_with_openssl(
    capsys: pytest.CaptureFixture[str],
) -> None:
    paths = _system_certificates()
    assert len(paths) > 50, f"{CA_BUNDLE_DIR}: expected the ca-certificates package"
    entries = inspect_json(capsys, *paths)
    assert len(entries) == len(paths)
    for path, entry in zip(paths, entries, strict=True):
        facts = openssl_facts(path)
        assert_agrees_with_openssl(entry, facts)
        assert entry["signature_algorithm"] == facts["sigalg"], path


# ---- openssl's renderings of names, keys and damaged certificates ------------


def openssl_text(path: Path, *, der: bool = False) -> str:
    form = ["-inform", "DER"] if der else []
    return subprocess.run(
        ["openssl", "x509", *form, "-in", str(path), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def openssl_extensions(text: str) -> list[tuple[str, bool, list[str]]]:
    """(title, critical, value lines) of each extension in `openssl x509 -text`."""
    section = text.split("X509v3 extensions:\n", 1)[1].split("\n    Signature Algorithm", 1)[0]
    extensions: list[tuple[str, bool, list[str]]] = []
    for line in section.splitlines():
        if line.startswith(" " * 16):
            extensions[-1][2].append(line[16:])
        else:
            match = re.fullmatch(r" {12}(.*?):( critical)?\s*", line)
            assert match, line
            extensions.append((match.group(1), bool(match.group(2)), []))
    return extensions


def our_extensions(entry: dict[str, Any]) -> list[tuple[str, bool, list[str]]]:
    return [(e["name"], e["critical"], e["value"]) for e in entry["extensions"]]


def _other(oid: str, text: str, string_tag: int = 0x0C) -> x509.OtherName:
    """An otherName holding a UTF8String (or, by tag, another string type)."""
    return x509.OtherName(x509.ObjectIdentifier(oid), pisec_der.encode(string_tag, text.encode()))


UPN = _other("1.3.6.1.4.1.311.20.2.3", "alice@example.org")
UNKNOWN_OTHER = _other("1.3.6.1.4.1.55555.7", "unk")


def _names_certificate(tmp_path: Path) -> Path:
    """Every kind of general name, in every extension that holds them."""
    directory_name = x509.DirectoryName(
        x509.Name(
            [
                x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE")]),
                x509.RelativeDistinguishedName(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "a/b, c=d+e"),
                        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ' "q" '),
                    ]
                ),
                x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "Jürgen")]),
            ]
        )
    )
    sans: list[x509.GeneralName] = [
        directory_name,
        UPN,
        _other("1.3.6.1.5.5.7.8.9", "jürgen@pi.example"),  # SmtpUTF8Mailbox
        _other("1.3.6.1.5.5.7.8.5", "pi@xmpp.test"),  # XmppAddr
        _other("1.3.6.1.5.5.7.8.7", "_mqtt.pi.test", 0x16),  # SRVName, an IA5String
        _other("1.3.6.1.5.5.7.8.8", "pi.test"),  # NAIRealm
        _other("1.3.6.1.5.5.7.8.3", "id"),  # Permanent Identifier
        UNKNOWN_OTHER,
        x509.OtherName(x509.ObjectIdentifier("1.3.6.1.4.1.55555.8"), b"\x02\x01\x05"),  # INTEGER
        x509.RegisteredID(x509.ObjectIdentifier("1.2.3.4")),
        x509.RFC822Name("ops@pi.example"),
        x509.UniformResourceIdentifier("https://pi.example/"),
        x509.IPAddress(ipaddress.ip_address("fe80::1")),
    ]
    ca = build(name("names CA"), new_key("p256"), ca=True)
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(directory_name.value)
        .issuer_name(ca.certificate.subject)
        .public_key(new_key("p256").public_key())
        .serial_number(0x1234)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=5))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.IssuerAlternativeName([directory_name, UPN]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier(b"\xab\xcd", [directory_name], 0xABCDEF), critical=False
        )
        .add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.CA_ISSUERS, directory_name
                    ),
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier("http://ocsp.pi.example"),
                    ),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.NameConstraints(
                permitted_subtrees=[
                    x509.IPAddress(ipaddress.ip_network("10.0.0.0/8")),
                    x509.IPAddress(ipaddress.ip_network("2001:db8::/32")),
                    x509.DNSName("pi.example"),
                    directory_name,
                    x509.RFC822Name("pi.example"),
                    x509.UniformResourceIdentifier(".pi.example"),
                    UPN,
                    UNKNOWN_OTHER,
                ],
                excluded_subtrees=[x509.IPAddress(ipaddress.ip_network("192.168.1.0/24"))],
            ),
            critical=True,
        )
        .add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        [
                            x509.UniformResourceIdentifier("http://pi.example/crl"),
                            directory_name,
                            UPN,
                            UNKNOWN_OTHER,
                        ],
                        None,
                        None,
                        None,
                    ),
                    x509.DistributionPoint(
                        None,
                        x509.RelativeDistinguishedName(
                            [x509.NameAttribute(NameOID.COMMON_NAME, "crl")]
                        ),
                        frozenset([x509.ReasonFlags.superseded, x509.ReasonFlags.key_compromise]),
                        [directory_name],
                    ),
                ]
            ),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    path = tmp_path / "names.crt"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def test_names_render_as_openssl_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _names_certificate(tmp_path)
    [entry] = inspect_json(capsys, path)
    san = subprocess.run(
        ["openssl", "x509", "-in", str(path), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert ", ".join(entry["san"]) == san[1].strip()
    assert entry["san"][:3] == [
        # DER sorts the multi-valued RDN: OU (2.5.4.11) encodes before O.
        'DirName:/C=DE/OU= "q" +O=a\\/b, c=d\\+e/CN=J\\xC3\\xBCrgen',
        "othername: UPN::alice@example.org",
        "othername: SmtpUTF8Mailbox::jürgen@pi.example",
    ]
    assert "othername: 1.3.6.1.4.1.55555.8::<unsupported>" in entry["san"]
    text = openssl_text(path)
    assert our_extensions(entry) == openssl_extensions(text)
    extensions = {title: lines for title, _, lines in our_extensions(entry)}
    assert extensions["X509v3 Name Constraints"][:3] == [
        "Permitted:",
        "  IP:10.0.0.0/255.0.0.0",
        "  IP:2001:DB8:0:0:0:0:0:0/FFFF:FFFF:0:0:0:0:0:0",
    ]
    assert "  othername:UPN:alice@example.org" in extensions["X509v3 Name Constraints"]
    assert extensions["X509v3 Authority Key Identifier"][0] == "keyid:AB:CD"
    assert main(["inspect", str(path)]) == 0
    ours = capsys.readouterr().out
    for line in text.splitlines():
        if line.lstrip().startswith(("Subject:", "Issuer:")):
            assert line in ours  # C = DE, OU = " \"q\" " + O = "a/b, c=d+e", CN = J\C3\BCrgen


def test_key_identifier_alone_is_not_labelled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = build(name("test CA"), new_key("p256"), ca=True)
    leaf = build(name("pi-01"), new_key("p256"), issuer=ca, sans=server_sans(), eku=SERVER_AUTH)
    path, _ = leaf.write(tmp_path, "leaf")
    [entry] = inspect_json(capsys, path)
    assert our_extensions(entry) == openssl_extensions(openssl_text(path))
    [aki] = [e["value"] for e in entry["extensions"] if "Authority Key" in e["name"]]
    assert len(aki) == 1 and not aki[0].startswith("keyid:")


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_public_key_heading_as_openssl_prints_it(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pair = build(name(kind), new_key(kind))
    path, _ = pair.write(tmp_path, kind)
    assert main(["inspect", str(path)]) == 0
    ours = capsys.readouterr().out.splitlines()
    theirs = [
        line
        for line in openssl_text(path).splitlines()
        if re.match(r"\s+(Public Key Algorithm:|\S* ?Public-Key:|ASN1 OID:|NIST CURVE:)", line)
    ]
    assert len(theirs) >= 2
    for line in theirs:
        assert line in ours, f"openssl's {line.strip()!r} is missing"
    if kind.startswith("ed"):
        assert f"                {kind.upper()} Public-Key:" in ours


def test_rsa_pss_key_is_named_as_openssl_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert = openssl_self_signed(tmp_path, "pss", ["-algorithm", "RSA-PSS"])
    assert main(["inspect", str(cert)]) == 0
    ours = capsys.readouterr().out
    assert "            Public Key Algorithm: rsassaPss\n" in ours
    assert "            Public Key Algorithm: rsassaPss\n" in openssl_text(cert)


def test_damaged_extension_is_shown_not_raised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The audit's badsan.pem: a SAN holding NULL instead of a SEQUENCE."""
    key = new_key("p256")
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name("bad"))
        .issuer_name(name("bad"))
        .public_key(key.public_key())
        .serial_number(5)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=3))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x05\x00"),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage(SERVER_AUTH), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "badsan.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    [entry] = inspect_json(capsys, path)
    problem = "X509v3 Subject Alternative Name extension is damaged (unexpected ASN.1 tag)"
    assert entry["problems"] == [problem]
    assert entry["san"] == [] and entry["is_ca"] is False
    assert entry["extended_key_usage"] == ["TLS Web Server Authentication"]
    theirs = openssl_extensions(openssl_text(path))
    ours = our_extensions(entry)
    # openssl too parses each extension alone; it prints the broken one's bytes.
    assert [(t, c) for t, c, _ in ours] == [(t, c) for t, c, _ in theirs]
    assert ours[0] == theirs[0] and ours[2] == theirs[2]
    assert ours[1][2] == ["<unparseable: unexpected ASN.1 tag>", "05:00"]
    assert main(["inspect", str(path)]) == 0
    assert f"    problem: {problem}\n" in capsys.readouterr().out


def test_repeated_extension_is_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pair = build(name("twice"), new_key("p256"))
    original = pair.certificate.public_bytes(serialization.Encoding.DER)
    extensions = pisec_der.certificate_extensions(pair.certificate.tbs_certificate_bytes)
    ski = next(e for e in extensions if e.oid == ExtensionOID.SUBJECT_KEY_IDENTIFIER.dotted_string)
    path = tmp_path / "twice.der"
    path.write_bytes(
        pisec_der.replace_extensions(original, [e.encoded for e in [*extensions, ski]])
    )
    [entry] = inspect_json(capsys, path)
    assert entry["problems"] == [
        "X509v3 Subject Key Identifier extension is damaged (appears twice)"
    ]
    assert [e["name"] for e in entry["extensions"]] == [
        t for t, _, _ in openssl_extensions(openssl_text(path, der=True))
    ]


def test_csr_with_a_damaged_extension(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name("pi-03"))
        .add_extension(
            x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x05\x00"),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(new_key("p256"), hashes.SHA256())
    )
    path = tmp_path / "bad.csr"
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    [entry] = inspect_json(capsys, path)
    assert entry["kind"] == "csr" and entry["signature_valid"] is True
    assert entry["problems"] == [
        "X509v3 Subject Alternative Name extension is damaged (unexpected ASN.1 tag)"
    ]
    assert entry["extensions"][1]["value"] == ["CA:FALSE"]


def test_damaged_issuer_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pair = build(name("pi-04", "fuzz"), new_key("p256"))
    original = pair.certificate.public_bytes(serialization.Encoding.DER)
    first = original.index(b"fuzz")  # the issuer comes before the subject
    path = tmp_path / "badname.der"
    path.write_bytes(original[:first] + b"\xff" + original[first + 1 :])
    [entry] = inspect_json(capsys, path)
    assert entry["issuer"] == "<unparseable>" and entry["subject"] == "CN=pi-04,O=fuzz"
    assert entry["problems"] == ["the issuer name is damaged (invalid value)"]
    assert entry["self_signed"] is False


def test_unsupported_curve_is_named_like_openssl(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = openssl_sm2(tmp_path)
    [entry] = inspect_json(capsys, path)
    assert entry["public_key"] == {"type": "EC", "bits": 256, "curve": "SM2"}
    assert entry["signature_algorithm"] == openssl_facts(path)["sigalg"] == "SM2-with-SM3"
    assert entry["self_signed"] is None
    assert (
        "pisec cannot use this key: Curve 1.2.156.10197.1.301 is not supported"
        in (entry["problems"])
    )
    assert main(["inspect", str(path)]) == 0
    ours = capsys.readouterr().out
    for line in ("Public Key Algorithm: id-ecPublicKey", "Public-Key: (256 bit)", "ASN1 OID: SM2"):
        assert line in openssl_text(path) and line in ours
    assert "self-issued (signature not checked)" in ours


def test_unknown_key_algorithm_is_named_by_oid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = build(name("test CA"), new_key("p256"), ca=True)
    leaf = build(name("odd key"), new_key("ed25519"), issuer=ca)
    original = leaf.certificate.public_bytes(serialization.Encoding.DER)
    ed25519_oid, other_oid = b"\x06\x03\x2b\x65\x70", b"\x06\x03\x2a\x03\x04"  # 1.2.3.4
    assert original.count(ed25519_oid) == 1
    path = tmp_path / "oddkey.der"
    path.write_bytes(original.replace(ed25519_oid, other_oid))
    [entry] = inspect_json(capsys, path)
    assert entry["public_key"] == {"type": "unsupported (1.2.3.4)", "bits": 0, "curve": None}
    assert entry["problems"] == ["pisec cannot use this key: Unknown key type: 1.2.3.4"]
    assert "Public Key Algorithm: 1.2.3.4\n" in openssl_text(path, der=True)
    assert main(["inspect", str(path)]) == 0
    assert "            Public Key Algorithm: 1.2.3.4\n" in capsys.readouterr().out


def test_trusted_certificate_block(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`openssl x509 -trustout` appends trust settings to the certificate's DER."""
    ca = build(name("trusted CA"), new_key("p256"), ca=True)
    plain, _ = ca.write(tmp_path, "ca")
    trusted = tmp_path / "trusted.pem"
    subprocess.run(
        [
            "openssl",
            "x509",
            "-in",
            str(plain),
            "-trustout",
            "-addtrust",
            "serverAuth",
            "-out",
            str(trusted),
        ],
        check=True,
    )
    assert trusted.read_text().startswith("-----BEGIN TRUSTED CERTIFICATE-----\n")
    [entry] = inspect_json(capsys, trusted)
    assert_agrees_with_openssl(entry, openssl_facts(trusted))
    assert entry["fingerprint_sha256"] == openssl_facts(plain)["sha256 Fingerprint"]
    assert entry["problems"] == [] and entry["self_signed"] is True


def test_validity_states(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC)
    windows = {
        "future": (now + timedelta(days=10), now + timedelta(days=40)),
        "current": (now - timedelta(days=1), now + timedelta(days=40)),
        "past": (now - timedelta(days=40), now - timedelta(days=10)),
    }
    paths = []
    for stem, (start, end) in windows.items():
        path, _ = build(name(stem), new_key("p256"), not_before=start, not_after=end).write(
            tmp_path, stem
        )
        paths.append(path)
    entries = inspect_json(capsys, *paths)
    assert [e["validity"] for e in entries] == ["not yet valid", "valid", "expired"]
    assert entries[0]["days_left"] == 39  # still counts down to notAfter
    checked = subprocess.run(
        ["openssl", "verify", "-CAfile", str(paths[0]), str(paths[0])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "certificate is not yet valid" in checked.stdout + checked.stderr
    assert main(["inspect", str(paths[0])]) == 0
    summary = capsys.readouterr().out.splitlines()[1]
    starts = windows["future"][0].strftime("%Y-%m-%d")
    assert f"NOT YET VALID: starts {starts} (in 9 days)" in summary
    assert "days left" not in summary
