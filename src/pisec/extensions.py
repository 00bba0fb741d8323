"""A certificate's or CSR's extensions, one at a time when they must be: an
extension cryptography cannot parse is kept as a DamagedExtension, shown
raw like openssl shows it."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import (
    ed25519,
)

from pisec import der
from pisec.oids import EXTENSION_ERRORS, extension_title


@dataclass(frozen=True)
class DamagedExtension:
    """An extension cryptography cannot parse: shown raw, like openssl does."""

    oid: str
    critical: bool
    raw: bytes
    why: str

    @property
    def title(self) -> str:
        return extension_title(self.oid) if self.oid else "X509v3 extensions"

    @property
    def problem(self) -> str:
        return f"{self.title} extension is damaged ({self.why})"


AnyExtension = x509.Extension[x509.ExtensionType] | DamagedExtension


@functools.cache
def _template_certificate() -> bytes:
    """A certificate to carry one extension at a time through cryptography's parser."""
    key = ed25519.Ed25519PrivateKey.generate()
    moment = datetime(2000, 1, 1, tzinfo=UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(moment)
        .not_valid_after(moment + timedelta(days=1))
        .sign(key, None)
    )
    return certificate.public_bytes(serialization.Encoding.DER)


def _parse_one(raw: der.RawExtension) -> AnyExtension:
    carrier = der.replace_extensions(_template_certificate(), [raw.encoded])
    try:
        extension: x509.Extension[x509.ExtensionType]
        [extension] = x509.load_der_x509_certificate(carrier).extensions
        return extension
    except EXTENSION_ERRORS as exc:
        return DamagedExtension(raw.oid, raw.critical, raw.value, der.explain(exc))


def read_extensions(value: x509.Certificate | x509.CertificateSigningRequest) -> list[AnyExtension]:
    """Every extension; those that do not parse (or repeat) as DamagedExtension."""
    try:
        return list(value.extensions)
    except EXTENSION_ERRORS as exc:
        whole_block_failed = exc
    try:
        if isinstance(value, x509.Certificate):
            raws = der.certificate_extensions(value.tbs_certificate_bytes)
        else:
            raws = der.csr_extensions(value.tbs_certrequest_bytes)
    except der.DerError:
        return [DamagedExtension("", False, b"", der.explain(whole_block_failed))]
    seen: set[str] = set()
    extensions: list[AnyExtension] = []
    for raw in raws:
        if raw.oid in seen:
            extensions.append(DamagedExtension(raw.oid, raw.critical, raw.value, "appears twice"))
            continue
        seen.add(raw.oid)
        extensions.append(_parse_one(raw))
    return extensions


def damaged_extensions(
    value: x509.Certificate | x509.CertificateSigningRequest,
) -> list[DamagedExtension]:
    return [ext for ext in read_extensions(value) if isinstance(ext, DamagedExtension)]
