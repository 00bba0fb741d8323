"""The fleet CA's files on the CA host, shared by pisec_ca's modules (the
revocation record is pisec_ca_record's).

With D = pisec_ca_dir:
  D/                        the CA that signs now: ca.key, ca.crt, ca.crl and
                            issued/<serial>.pem, a copy of everything it issued
  D.previous/               the CA a rollover switched away from (trusted until
                            `retire`)
  D.next/                   the CA a rollover introduced (trusted, not signing yet)
  D.retired/generation-N/   retired CAs, kept and trusted no more
  D.revoked.yml             the revocation record of every generation
                            (pisec_ca_record)
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# The serial form of every part of pisec (src/pisec/rules.py).
from ansible.module_utils.pisec_rules import serial_hex
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

# Oldest first: the order of trust bundles and CRL bundles.
TRUSTED_SUFFIXES = (".previous", "", ".next")
MAX_PEM_BYTES = 1024 * 1024
_HEX = re.compile(r"[0-9A-F]+")
ASN1_TIME = "%Y%m%d%H%M%SZ"


class StoreError(Exception):
    """A file of the CA that cannot be used; the message names it."""


def normal_serial(text: Any) -> str:
    """A serial given as hex (with or without colons), in serial_hex form; '' if it is not hex."""
    digits = str(text).replace(":", "").strip().upper()
    if not _HEX.fullmatch(digits):
        return ""
    return str(serial_hex(int(digits, 16)))


def not_before(certificate: x509.Certificate) -> datetime:
    # The *_utc properties came with cryptography 42; Debian bookworm has 38.
    value = getattr(certificate, "not_valid_before_utc", None)
    return value if value is not None else certificate.not_valid_before.replace(tzinfo=UTC)


def not_after(certificate: x509.Certificate) -> datetime:
    value = getattr(certificate, "not_valid_after_utc", None)
    return value if value is not None else certificate.not_valid_after.replace(tzinfo=UTC)


def crl_next_update(crl: x509.CertificateRevocationList) -> datetime | None:
    if hasattr(crl, "next_update_utc"):
        value: datetime | None = crl.next_update_utc
        return value
    legacy = crl.next_update
    return legacy.replace(tzinfo=UTC) if legacy is not None else None


def revocation_date(entry: x509.RevokedCertificate) -> datetime:
    value = getattr(entry, "revocation_date_utc", None)
    return value if value is not None else entry.revocation_date.replace(tzinfo=UTC)


def key_id(certificate: x509.Certificate) -> str:
    """The CA's key identifier (its SubjectKeyIdentifier), as colon-separated hex."""
    try:
        digest = certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value.digest
    except x509.ExtensionNotFound:
        digest = x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest
    return ":".join(f"{byte:02X}" for byte in digest)


def signed_by(tbs: bytes, signature: bytes, algorithm: Any, issuer: x509.Certificate) -> bool:
    """Whether `signature` over `tbs` verifies with the issuer's public key."""
    public_key = issuer.public_key()
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, tbs, ec.ECDSA(algorithm))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, tbs, padding.PKCS1v15(), algorithm)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def certificate_signed_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    return certificate.issuer == issuer.subject and signed_by(
        certificate.tbs_certificate_bytes,
        certificate.signature,
        certificate.signature_hash_algorithm,
        issuer,
    )


def crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    return crl.issuer == issuer.subject and signed_by(
        crl.tbs_certlist_bytes, crl.signature, crl.signature_hash_algorithm, issuer
    )


def authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The AuthorityKeyIdentifier of what this CA signs (its own key identifier)."""
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def digest_for(issuer: x509.Certificate) -> hashes.HashAlgorithm:
    """SHA-384 under a P-384 CA key (as the CA signs itself), SHA-256 otherwise."""
    public_key = issuer.public_key()
    if isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def read_text(path: str, what: str) -> str:
    """A small ASCII file (PEM, YAML); an error names the file."""
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read(MAX_PEM_BYTES + 1)
    except UnicodeDecodeError:
        raise StoreError(f"{path}: not ASCII; not {what}") from None
    except OSError as exc:
        raise StoreError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    if len(text) > MAX_PEM_BYTES:
        raise StoreError(f"{path}: larger than {MAX_PEM_BYTES} bytes; not {what}")
    return text


def load_certificate_file(path: str, what: str = "a PEM certificate") -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(read_text(path, what).encode("ascii"))
    except ValueError:
        raise StoreError(f"{path}: not {what}") from None


def write_atomically(path: str, data: bytes, mode: int) -> None:
    """Replace `path` with `data` in one rename, created with `mode` (never wider)."""
    directory = os.path.dirname(path) or "."
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".pisec-")
    try:
        os.fchmod(handle, mode)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@dataclass(frozen=True)
class Generation:
    """One CA of the fleet: its directory and certificate."""

    suffix: str
    path: str
    certificate: x509.Certificate

    @property
    def key_id(self) -> str:
        return key_id(self.certificate)

    @property
    def certificate_path(self) -> str:
        return os.path.join(self.path, "ca.crt")

    @property
    def key_path(self) -> str:
        return os.path.join(self.path, "ca.key")

    @property
    def crl_path(self) -> str:
        return os.path.join(self.path, "ca.crl")

    @property
    def issued_dir(self) -> str:
        return os.path.join(self.path, "issued")


def generation_path(ca_dir: str, suffix: str) -> str:
    if "/" in suffix:
        raise StoreError(f"generation {suffix!r} is a suffix, not a path")
    return f"{ca_dir.rstrip('/')}{suffix}"


def trusted_generations(
    ca_dir: str, suffixes: Iterable[str] = TRUSTED_SUFFIXES
) -> list[Generation]:
    """The CAs the fleet trusts now, oldest first (those whose ca.crt exists)."""
    found = []
    for suffix in suffixes:
        path = generation_path(ca_dir, suffix)
        certificate_path = os.path.join(path, "ca.crt")
        if os.path.isfile(certificate_path):
            found.append(Generation(suffix, path, load_certificate_file(certificate_path)))
    return found


def signing_generation(ca_dir: str) -> Generation:
    """The CA that signs now; an error when there is none."""
    for generation in trusted_generations(ca_dir, ("",)):
        return generation
    raise StoreError(
        f"{ca_dir}/ca.crt: no CA certificate. Run playbooks/site.yml (or ca.yml), "
        "which creates the CA first"
    )


def load_ca_key(generation: Generation, passphrase: str | None) -> Any:
    try:
        data = read_text(generation.key_path, "a PEM private key").encode("ascii")
        return serialization.load_pem_private_key(
            data, password=passphrase.encode() if passphrase else None
        )
    except (TypeError, ValueError):
        raise StoreError(
            f"{generation.key_path}: cannot be opened with the given pisec_ca_passphrase"
        ) from None


def retired_paths(ca_dir: str) -> list[str]:
    retired = f"{ca_dir.rstrip('/')}.retired"
    try:
        names = sorted(os.listdir(retired))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StoreError(f"{retired}: cannot list: {exc.strerror or exc}") from None
    return [os.path.join(retired, name) for name in names]


def issued_certificates(generation: Generation) -> Iterator[tuple[str, x509.Certificate]]:
    """Every certificate this CA recorded as issued, with its file."""
    try:
        names = sorted(os.listdir(generation.issued_dir))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"{generation.issued_dir}: cannot list: {exc.strerror or exc}") from None
    for name in names:
        if name.endswith(".pem"):
            path = os.path.join(generation.issued_dir, name)
            yield path, load_certificate_file(path, "a PEM certificate (issued record)")


def record_issued(generation: Generation, certificate: x509.Certificate) -> str:
    """Keep a copy of an issued certificate, named by its serial; never overwrite one."""
    os.makedirs(generation.issued_dir, mode=0o700, exist_ok=True)
    path = os.path.join(generation.issued_dir, f"{serial_hex(certificate.serial_number)}.pem")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    handle = os.open(path, flags, 0o600)
    with os.fdopen(handle, "wb") as out:
        out.write(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def is_recorded(generation: Generation, certificate: x509.Certificate) -> bool:
    """Whether this exact certificate is in the CA's issued record."""
    path = os.path.join(generation.issued_dir, f"{serial_hex(certificate.serial_number)}.pem")
    if not os.path.isfile(path):
        return False
    recorded = load_certificate_file(path, "a PEM certificate (issued record)")
    der = serialization.Encoding.DER
    return recorded.public_bytes(der) == certificate.public_bytes(der)


def asn1_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(ASN1_TIME)
