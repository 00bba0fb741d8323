"""Read certificates and CSRs from PEM (one or many blocks) or DER files.

Everything a user can hand us by mistake (a directory, an empty file, a
truncated PEM, a private key, random bytes) becomes a PisecError naming the
file, never an exception from deep inside a parser.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import (
    load_der_private_key,
    load_pem_private_key,
)

from pisec import der
from pisec.errors import PisecError

Kind = Literal["certificate", "csr"]

# BEGIN and END lines, found in one pass: the label is bounded, so a file
# of nothing but BEGIN lines costs the same per byte as a valid one (a
# lazy BEGIN...END pattern rescans to the end of the file for each BEGIN).
_PEM_MARKER = re.compile(rb"-----(BEGIN|END) ([A-Z0-9 ]{1,64})-----")
_PEM_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,64})-----")
_TRUSTED_LABEL = "TRUSTED CERTIFICATE"
_CERTIFICATE_LABELS = {"CERTIFICATE", "X509 CERTIFICATE", _TRUSTED_LABEL}
_CSR_LABELS = {"CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"}
MAX_FILE_BYTES = 16 * 1024 * 1024
# cryptography raises InvalidVersion (not a ValueError) for a certificate
# whose version field is neither v1 nor v3; it is damage all the same.
_PARSE_ERRORS = (ValueError, x509.InvalidVersion)


@dataclass(frozen=True)
class Item:
    """One certificate or CSR, with where it came from."""

    source: str
    index: int  # 1-based position in the file
    encoding: Literal["PEM", "DER"]
    value: x509.Certificate | x509.CertificateSigningRequest

    @property
    def kind(self) -> Kind:
        return "certificate" if isinstance(self.value, x509.Certificate) else "csr"


def read_bytes(path: Path, what: str) -> bytes:
    """The file's bytes, or a PisecError saying why not."""
    if path.is_dir():
        raise PisecError(str(path), f"is a directory, not a {what}")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise PisecError(str(path), "no such file") from None
    except OSError as exc:
        raise PisecError(str(path), f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise PisecError(str(path), f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    if not data.strip():
        raise PisecError(str(path), "empty file")
    return data


def _label_problem(label: str) -> str | None:
    if "PRIVATE KEY" in label:
        return "holds a private key, not a certificate or CSR"
    if "PUBLIC KEY" in label:
        return "holds a public key, not a certificate or CSR"
    if label in ("X509 CRL",):
        return "holds a CRL, not a certificate or CSR"
    if label not in _CERTIFICATE_LABELS | _CSR_LABELS:
        return f"holds a PEM block {label!r}, not a certificate or CSR"
    return None


@dataclass(frozen=True)
class PemBlock:
    """One BEGIN ... END block: its label, its bytes with both lines, its body."""

    label: str
    text: bytes
    body: bytes


def pem_blocks(data: bytes) -> Iterator[PemBlock]:
    """Every PEM block in `data`, in order, in time linear in its size; a
    generator, so a reader that refuses the first block stops there.

    Raises ValueError for a BEGIN without its END (before the next BEGIN or
    the end of the data), for an END that closes another label, and for a
    BEGIN line that does not end the line. Text between blocks is ignored,
    as openssl ignores it.
    """
    count = 0
    begin: re.Match[bytes] | None = None
    for marker in _PEM_MARKER.finditer(data):
        kind, label = marker.group(1), marker.group(2).decode()
        if kind == b"BEGIN":
            if begin is not None:
                raise ValueError("truncated PEM: a BEGIN line has no matching END line")
            if not data.startswith((b"\n", b"\r\n"), marker.end()):
                raise ValueError(f"PEM block {count + 1}: BEGIN {label} does not end its line")
            begin = marker
        elif begin is not None:
            opened = begin.group(2).decode()
            if label != opened:
                raise ValueError(f"PEM block {count + 1}: BEGIN {opened} is closed by END {label}")
            count += 1
            yield PemBlock(
                opened, data[begin.start() : marker.end()], data[begin.end() : marker.start()]
            )
            begin = None
    if begin is not None:
        raise ValueError("truncated PEM: a BEGIN line has no matching END line")


def _load_pem(path: Path, data: bytes) -> list[Item]:
    items: list[Item] = []
    blocks = enumerate(pem_blocks(data), start=1)
    while True:
        try:
            number, block = next(blocks)
        except StopIteration:
            break
        except ValueError as exc:
            raise PisecError(str(path), str(exc)) from None
        problem = _label_problem(block.label)
        if problem is not None:
            raise PisecError(str(path), problem)
        try:
            value: x509.Certificate | x509.CertificateSigningRequest
            if block.label == _TRUSTED_LABEL:
                value = x509.load_der_x509_certificate(_without_trust(block.body))
            elif block.label in _CERTIFICATE_LABELS:
                value = x509.load_pem_x509_certificate(block.text)
            else:
                value = x509.load_pem_x509_csr(block.text)
        except _PARSE_ERRORS as exc:
            raise PisecError(
                str(path), f"PEM block {number} ({block.label}) is damaged: {_short(exc)}"
            ) from None
        items.append(Item(str(path), number, "PEM", value))
    if not items:
        raise PisecError(str(path), "no certificate or CSR in the PEM data")
    return items


def _without_trust(body: bytes) -> bytes:
    """The certificate of a `TRUSTED CERTIFICATE` block (`openssl x509
    -trustout`): its DER is the certificate followed by openssl's trust
    settings, which pisec does not read."""
    try:
        data = base64.b64decode(b"".join(body.split()), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"bad base64: {exc}") from None
    return der.first_element(data)


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


def load_items(path: Path) -> list[Item]:
    """All certificates and CSRs in the file, in file order."""
    data = read_bytes(path, "certificate or CSR")
    if b"-----BEGIN" in data:
        return _load_pem(path, data)
    for loader in (x509.load_der_x509_certificate, x509.load_der_x509_csr):
        try:
            return [Item(str(path), 1, "DER", loader(data))]
        except _PARSE_ERRORS:
            continue
    if _is_der_private_key(data):
        raise PisecError(str(path), "holds a private key, not a certificate or CSR")
    raise PisecError(str(path), "neither a PEM nor a DER certificate or CSR")


def _is_der_private_key(data: bytes) -> bool:
    try:
        load_der_private_key(data, password=None)
    except (ValueError, TypeError):
        return False
    return True


def load_certificates(path: Path, what: str) -> list[x509.Certificate]:
    """Certificates only (a CSR is an error naming `what`)."""
    items = load_items(path)
    certificates = [item.value for item in items if isinstance(item.value, x509.Certificate)]
    if len(certificates) != len(items):
        raise PisecError(str(path), f"holds a CSR where a {what} belongs")
    return certificates


def load_private_key(path: Path) -> PrivateKeyTypes:
    data = read_bytes(path, "private key")
    try:
        if b"-----BEGIN" in data:
            return load_pem_private_key(data, password=None)
        return load_der_private_key(data, password=None)
    except TypeError:
        raise PisecError(str(path), "the private key is encrypted") from None
    except UnsupportedAlgorithm as exc:
        raise PisecError(str(path), f"unsupported private key ({_short(exc)})") from None
    except ValueError:
        raise PisecError(str(path), _key_problem(data)) from None


def _key_problem(data: bytes) -> str:
    labels = [label.decode() for label in _PEM_BEGIN.findall(data)]
    others = [label for label in labels if "PRIVATE KEY" not in label]
    if labels and len(others) == len(labels):
        return f"holds a PEM block {others[0]!r}, not a private key"
    if labels:
        return "the private key is damaged or of a type pisec cannot read"
    return "not a private key: neither a PEM nor a DER private key"


def load_crl(path: Path) -> x509.CertificateRevocationList:
    data = read_bytes(path, "CRL")
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise PisecError(str(path), f"not a CRL ({_short(exc)})") from None
