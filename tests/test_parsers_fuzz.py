"""Every parser meets random and mutated input with a PisecError, never a crash."""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pisec.certfile import load_crl, load_items, load_private_key
from pisec.cli import main
from pisec.errors import PisecError
from pisec.probe import ProbeTarget
from pisec.verify import parse_time
from tests.certs import build, name, new_key

_CA = build(name("fuzz CA"), new_key("p256"), ca=True)
PEM = _CA.certificate.public_bytes(serialization.Encoding.PEM)
DER = _CA.certificate.public_bytes(serialization.Encoding.DER)


def _parse_all(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "input"
        path.write_bytes(data)
        for parser in (load_items, load_private_key, load_crl):
            try:
                parser(path)
            except PisecError as exc:
                assert exc.what == str(path)
                assert exc.why and "\n" not in exc.why


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    _parse_all(data)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([PEM, DER]), st.data())
def test_mutated_certificates(original: bytes, data: st.DataObject) -> None:
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8))):
        choice = data.draw(st.integers(0, 2))
        position = data.draw(st.integers(0, len(mutated) - 1))
        if choice == 0:
            mutated[position] = data.draw(st.integers(0, 255))
        elif choice == 1:
            del mutated[position:]
            if not mutated:
                mutated.extend(b"x")
        else:
            mutated.insert(position, data.draw(st.integers(0, 255)))
    _parse_all(bytes(mutated))


@given(st.text(max_size=200))
def test_urls_and_times(text: str) -> None:
    for parser in (ProbeTarget.parse, parse_time):
        try:
            parser(text)
        except PisecError as exc:
            assert exc.why


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "empty file"),
        (b"   \n", "empty file"),
        (PEM[: len(PEM) // 2], "truncated PEM: a BEGIN line has no matching END line"),
        (b"\x8f\x00garbage", "neither a PEM nor a DER certificate or CSR"),
        (
            _CA.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            "holds a private key, not a certificate or CSR",
        ),
        (
            _CA.key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            "holds a private key, not a certificate or CSR",
        ),
    ],
    ids=["empty", "blank", "truncated", "garbage", "pem-key", "der-key"],
)
def test_inspect_bad_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, why: str
) -> None:
    path = tmp_path / "input.pem"
    path.write_bytes(content)
    assert main(["inspect", str(path)]) == 2
    assert capsys.readouterr().err == f"pisec: error: {path}: {why}\n"


def test_inspect_directory_missing_and_unreadable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"pisec: error: {tmp_path}: is a directory, not a certificate or CSR\n"
    )
    assert main(["inspect", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == f"pisec: error: {tmp_path / 'nope'}: no such file\n"
    # Root reads any mode, so use a file the kernel refuses to read.
    assert main(["inspect", "/proc/self/mem"]) == 2
    assert capsys.readouterr().err.startswith("pisec: error: /proc/self/mem: cannot read: ")


@pytest.mark.parametrize("encoding", ["PEM", "DER"])
def test_certificate_with_an_invalid_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], encoding: str
) -> None:
    # Found by test_mutated_certificates: version v2 (INTEGER 1) makes
    # cryptography raise InvalidVersion, which is not a ValueError.
    v3, v2 = b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x01"
    assert DER.count(v3) == 1
    damaged = DER.replace(v3, v2)
    path = tmp_path / "v2.crt"
    if encoding == "DER":
        path.write_bytes(damaged)
        why = "neither a PEM nor a DER certificate or CSR"
    else:
        body = base64.encodebytes(damaged).decode()
        path.write_text(f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n")
        why = "PEM block 1 (CERTIFICATE) is damaged: 1 is not a valid X509 version"
    assert main(["inspect", str(path)]) == 2
    assert capsys.readouterr().err == f"pisec: error: {path}: {why}\n"
