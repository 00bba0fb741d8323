"""Every parser meets random and mutated input with a PisecError, never a crash.

Whatever a loader accepts goes on through everything that reads it: inspect's
facts with their text and JSON renderings, and verify's chain building.
"""

from __future__ import annotations

import base64
import io
import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pisec.certfile import MAX_FILE_BYTES, load_crl, load_items, load_private_key
from pisec.cli import main
from pisec.errors import PisecError
from pisec.facts import describe
from pisec.probe import ProbeTarget, read_password_file
from pisec.render import Style, render_text
from pisec.verify import VerifyOptions, parse_time, verify
from tests.certs import SERVER_AUTH, build, name, new_key, server_sans

_CA = build(name("fuzz CA"), new_key("p256"), ca=True, every_extension=True)
PEM = _CA.certificate.public_bytes(serialization.Encoding.PEM)
DER = _CA.certificate.public_bytes(serialization.Encoding.DER)
_LEAF = build(name("pi-01"), new_key("p256"), issuer=_CA, sans=server_sans(), eku=SERVER_AUTH)
LEAF_DER = _LEAF.certificate.public_bytes(serialization.Encoding.DER)
LEAF_PEM = _LEAF.certificate.public_bytes(serialization.Encoding.PEM)
_CSR = (
    x509.CertificateSigningRequestBuilder()
    .subject_name(name("pi-02", "pisec"))
    .add_extension(x509.SubjectAlternativeName(server_sans()), critical=False)
    .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    .sign(_LEAF.key, hashes.SHA256())
)
CSR_DER = _CSR.public_bytes(serialization.Encoding.DER)
CSR_PEM = _CSR.public_bytes(serialization.Encoding.PEM)


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


def _mutate(original: bytes, data: st.DataObject, *, keep_length: bool = False) -> bytes:
    """A few bytes changed, cut or inserted; only changed when `keep_length`,
    which keeps DER lengths right and so gets damaged values past the loader."""
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8))):
        choice = 0 if keep_length else data.draw(st.integers(0, 2))
        position = data.draw(st.integers(0, len(mutated) - 1))
        if choice == 0:
            mutated[position] = data.draw(st.integers(0, 255))
        elif choice == 1:
            del mutated[position:]
            if not mutated:
                mutated.extend(b"x")
        else:
            mutated.insert(position, data.draw(st.integers(0, 255)))
    return bytes(mutated)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([PEM, DER, CSR_PEM, CSR_DER]), st.data())
def test_mutated_certificates(original: bytes, data: st.DataObject) -> None:
    _parse_all(_mutate(original, data))


@contextmanager
def _files(**contents: bytes) -> Iterator[dict[str, Path]]:
    with tempfile.TemporaryDirectory() as directory:
        paths = {}
        for stem, content in contents.items():
            paths[stem] = Path(directory) / stem
            paths[stem].write_bytes(content)
        yield paths


def _assert_one_line(exc: PisecError) -> None:
    assert exc.what and exc.why and "\n" not in exc.why


def _inspect_and_verify(cert: Path, ca: Path, key: Path) -> None:
    """What `pisec inspect` and `pisec verify` do with the file, minus argv."""
    try:
        items = load_items(cert)
    except PisecError as exc:
        _assert_one_line(exc)
        return
    for item in items:
        facts = describe(item)
        json.dumps(facts.to_json())
        render_text(facts, io.StringIO(), Style(enabled=True))
    options = VerifyOptions(ca_file=ca, cert_file=cert, key_file=key, host="pi-01")
    try:
        result = verify(options)
    except PisecError as exc:
        _assert_one_line(exc)
        return
    assert result.checks[0].name == "chain"


_KEY_PEM = _LEAF.key.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([LEAF_DER, LEAF_PEM, CSR_DER, DER]), st.booleans(), st.data())
def test_mutated_certificates_through_inspect_and_verify(
    original: bytes, keep_length: bool, data: st.DataObject
) -> None:
    mutated = _mutate(original, data, keep_length=keep_length)
    with _files(cert=mutated, ca=PEM, key=_KEY_PEM) as paths:
        _inspect_and_verify(paths["cert"], paths["ca"], paths["key"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_ca_through_verify(data: st.DataObject) -> None:
    mutated = _mutate(DER, data, keep_length=True)
    with _files(cert=LEAF_PEM, ca=mutated, key=_KEY_PEM) as paths:
        try:
            verify(VerifyOptions(ca_file=paths["ca"], cert_file=paths["cert"], host="pi-01"))
        except PisecError as exc:
            _assert_one_line(exc)


@given(st.binary(max_size=512))
def test_password_files(data: bytes) -> None:
    with _files(password=data) as paths:
        try:
            password = read_password_file(paths["password"])
        except PisecError as exc:
            assert exc.what == str(paths["password"])
            _assert_one_line(exc)
            return
    assert password and password == data.decode("utf-8").splitlines()[0]


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


def _scan_seconds(tmp_path: Path, content: bytes) -> float:
    path = tmp_path / "big.pem"
    path.write_bytes(content)
    started = time.perf_counter()
    with pytest.raises(PisecError):
        load_items(path)
    return time.perf_counter() - started


@pytest.mark.parametrize(
    "unit",
    [
        b"-----BEGIN CERTIFICATE-----\n",
        b"-----BEGIN CERTIFICATE-----\n" + b"A" * 64 + b"\n",
        b"-----END CERTIFICATE-----\n-----BEGIN X509 CRL-----\n",
        # Scanned to the end: empty blocks of a label pisec then refuses,
        # and one BEGIN whose END never comes.
        b"-----BEGIN JUNK-----\n-----END JUNK-----\n",
        b"A" * 63 + b"\n",
    ],
    ids=["begin-lines", "begins-with-bodies", "end-then-begin", "empty-blocks", "no-end"],
)
def test_the_pem_scan_is_linear_up_to_the_size_cap(tmp_path: Path, unit: bytes) -> None:
    """A file of repeated BEGIN lines (what a hostile broker could serve to
    verify.yml) is refused in about the time it takes to read: 16 MiB, the
    cap, within 2 s here, and twice the bytes cost about twice the time.
    (The lazy BEGIN...END pattern this replaced took 6 s for 200 KB.)"""
    begin = b"-----BEGIN CERTIFICATE-----\n" if unit.startswith(b"A") else b""
    full = begin + unit * ((MAX_FILE_BYTES - len(begin)) // len(unit))
    assert len(full) <= MAX_FILE_BYTES
    whole = _scan_seconds(tmp_path, full)
    half = _scan_seconds(
        tmp_path, begin + full[len(begin) :][: len(full) // 2 // len(unit) * len(unit)]
    )
    assert whole < 2.0, f"16 MiB took {whole:.2f} s"
    # Linear: doubling the input at most triples the time (noise allowed);
    # quadratic would quadruple it.
    assert whole < 3 * half + 0.25, f"{half:.3f} s for half, {whole:.3f} s for all"


def test_a_bundle_up_to_the_size_cap_is_read_whole(tmp_path: Path) -> None:
    """The largest file pisec reads, all of it real certificates with text
    between them: every one is read, in order, in a few seconds."""
    pair = PEM + b"between blocks\n" + LEAF_PEM
    path = tmp_path / "bundle.pem"
    path.write_bytes(pair * (MAX_FILE_BYTES // len(pair)))
    started = time.perf_counter()
    items = load_items(path)
    seconds = time.perf_counter() - started
    assert len(items) == 2 * (MAX_FILE_BYTES // len(pair))
    assert [item.index for item in items[:3]] == [1, 2, 3]
    assert items[1].value == _LEAF.certificate
    assert seconds < 10, f"{len(items)} certificates took {seconds:.1f} s"
