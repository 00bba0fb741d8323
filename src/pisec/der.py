"""Just enough DER to look inside structures cryptography reads all or nothing.

cryptography parses a certificate's extensions as one block and its public
key only when the algorithm is supported. openssl still shows the rest of
such a certificate, so pisec walks the DER itself where it must: to find the
single damaged extension, to name an unsupported key, and to cut the trust
data off a `TRUSTED CERTIFICATE`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SEQUENCE = 0x30
SET = 0x31
OID = 0x06
BOOLEAN = 0x01
OCTET_STRING = 0x04
BIT_STRING = 0x03
EXTENSIONS_TAG = 0xA3  # [3] EXPLICIT Extensions in TBSCertificate
ATTRIBUTES_TAG = 0xA0  # [0] IMPLICIT Attributes in CertificationRequestInfo
EXTENSION_REQUEST = "1.2.840.113549.1.9.14"


class DerError(ValueError):
    """The bytes are not the DER structure we expected."""


@dataclass(frozen=True)
class Tlv:
    """One DER element inside `data`."""

    data: bytes
    tag: int
    start: int  # offset of the tag byte
    value_start: int
    end: int  # offset just past the value

    @property
    def value(self) -> bytes:
        return self.data[self.value_start : self.end]

    @property
    def encoded(self) -> bytes:
        return self.data[self.start : self.end]


def read_tlv(data: bytes, offset: int = 0, limit: int | None = None) -> Tlv:
    """The element starting at `offset`; definite lengths and low tag numbers only."""
    stop = len(data) if limit is None else limit
    if offset + 2 > stop:
        raise DerError("truncated element")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DerError("high tag numbers are not used in certificates")
    first = data[offset + 1]
    position = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise DerError("indefinite or oversized length")
        if position + count > stop:
            raise DerError("truncated length")
        length = int.from_bytes(data[position : position + count], "big")
        position += count
    if position + length > stop:
        raise DerError("element longer than its container")
    return Tlv(data, tag, offset, position, position + length)


def children(parent: Tlv) -> list[Tlv]:
    """The elements inside a constructed element, in order."""
    items = []
    position = parent.value_start
    while position < parent.end:
        child = read_tlv(parent.data, position, parent.end)
        items.append(child)
        position = child.end
    return items


def first_element(data: bytes) -> bytes:
    """The first complete element: a certificate without what follows it."""
    return read_tlv(data).encoded


def encode(tag: int, value: bytes) -> bytes:
    length = len(value)
    if length < 0x80:
        header = bytes([tag, length])
    else:
        size = (length.bit_length() + 7) // 8
        header = bytes([tag, 0x80 | size]) + length.to_bytes(size, "big")
    return header + value


def oid_text(element: Tlv) -> str:
    """Dotted form of an OBJECT IDENTIFIER element."""
    if element.tag != OID or not element.value:
        raise DerError("not an object identifier")
    arcs: list[int] = []
    current = 0
    for byte in element.value:
        current = (current << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(current)
            current = 0
    if element.value[-1] & 0x80:
        raise DerError("truncated object identifier")
    first = arcs[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(arc) for arc in [*head, *arcs[1:]])


@dataclass(frozen=True)
class RawExtension:
    oid: str
    critical: bool
    value: bytes  # the extnValue OCTET STRING's content
    encoded: bytes  # the whole Extension SEQUENCE


def _raw_extension(element: Tlv) -> RawExtension:
    parts = children(element)
    if element.tag != SEQUENCE or len(parts) not in (2, 3) or parts[-1].tag != OCTET_STRING:
        raise DerError("an extension is not OID, critical flag, value")
    critical = len(parts) == 3 and parts[1].tag == BOOLEAN and parts[1].value != b"\x00"
    return RawExtension(oid_text(parts[0]), critical, parts[-1].value, element.encoded)


def certificate_extensions(tbs_certificate: bytes) -> list[RawExtension]:
    """Every extension of a TBSCertificate, parsed no further than its OID."""
    for part in children(read_tlv(tbs_certificate)):
        if part.tag == EXTENSIONS_TAG:
            inner = children(part)
            if len(inner) != 1 or inner[0].tag != SEQUENCE:
                raise DerError("the extensions are not one SEQUENCE")
            return [_raw_extension(element) for element in children(inner[0])]
    return []


def csr_extensions(request_info: bytes) -> list[RawExtension]:
    """The extensions a CertificationRequestInfo asks for (PKCS #9 extensionRequest)."""
    for part in children(read_tlv(request_info)):
        if part.tag != ATTRIBUTES_TAG:
            continue
        for attribute in children(part):
            pieces = children(attribute)
            if len(pieces) == 2 and oid_text(pieces[0]) == EXTENSION_REQUEST:
                values = children(pieces[1])
                if values:
                    return [_raw_extension(element) for element in children(values[0])]
    return []


@dataclass(frozen=True)
class RawPublicKey:
    algorithm: str  # dotted OID of the key algorithm
    parameter: str | None  # dotted OID parameter (an EC curve), if any
    key: bytes  # the subjectPublicKey BIT STRING without its unused-bits byte


def public_key_info(tbs: bytes, *, request: bool) -> RawPublicKey:
    """The SubjectPublicKeyInfo of a TBSCertificate or CertificationRequestInfo."""
    parts = children(read_tlv(tbs))
    # A v1 certificate has no [0] version field before the serial.
    index = 2 if request else 6 if parts and parts[0].tag == 0xA0 else 5
    if len(parts) <= index:
        raise DerError("no public key")
    algorithm, bits = children(parts[index])[:2]
    identifier = children(algorithm)
    named = len(identifier) > 1 and identifier[1].tag == OID
    parameter = oid_text(identifier[1]) if named else None
    return RawPublicKey(oid_text(identifier[0]), parameter, bits.value[1:])


def replace_extensions(certificate: bytes, extensions: list[bytes]) -> bytes:
    """A copy of `certificate` with exactly these encoded extensions."""
    outer = read_tlv(certificate)
    tbs, *rest = children(outer)
    kept = b"".join(part.encoded for part in children(tbs) if part.tag != EXTENSIONS_TAG)
    block = encode(EXTENSIONS_TAG, encode(SEQUENCE, b"".join(extensions)))
    new_tbs = encode(SEQUENCE, kept + block)
    return encode(SEQUENCE, new_tbs + b"".join(part.encoded for part in rest))


_KIND = re.compile(r"kind: (\w+)")
_KINDS = {
    "UnexpectedTag": "unexpected ASN.1 tag",
    "InvalidValue": "invalid value",
    "InvalidLength": "invalid length",
    "ShortData": "truncated data",
    "ExtraData": "extra data after the value",
    "IntegerOverflow": "integer too large",
    "EncodedDefault": "a DEFAULT value is encoded",
    "InvalidSetOrdering": "SET elements out of order",
    "OidTooLong": "object identifier too long",
    "UnknownDefinedBy": "unknown algorithm parameters",
}


def explain(exc: BaseException) -> str:
    """cryptography's parse errors in a few words: `unexpected ASN.1 tag`."""
    text = str(exc)
    match = _KIND.search(text)
    if match:
        return _KINDS.get(match.group(1), match.group(1))
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:160]
