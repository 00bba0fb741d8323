"""Names and general names exactly as openssl 3 prints them.

openssl has two renderings of a general name and uses them in different
places, so pisec does too:

* the value-list form (`i2v_GENERAL_NAME`) in subject/issuer alternative
  names, authority information access and the authority key identifier:
  `DirName:/C=DE/CN=x`, `othername: UPN::alice@example.org`;
* the print form (`GENERAL_NAME_print`) in CRL distribution points and name
  constraints: `DirName:C = DE, CN = x`, `othername:UPN:alice@example.org`.

Names on their own (Subject, Issuer) use the print form's `oneline` flags:
`C = DE, O = "a, b", CN = x \\C3\\A9`.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from cryptography import x509
from cryptography.x509.name import _ASN1Type

from pisec import der

Form = Literal["list", "print"]

# openssl's short names for attribute types (OBJ_nid2sn); others print dotted.
ATTRIBUTE_LABELS = {
    "2.5.4.3": "CN",
    "2.5.4.4": "SN",
    "2.5.4.5": "serialNumber",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.9": "street",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.12": "title",
    "2.5.4.13": "description",
    "2.5.4.15": "businessCategory",
    "2.5.4.17": "postalCode",
    "2.5.4.41": "name",
    "2.5.4.42": "GN",
    "2.5.4.43": "initials",
    "2.5.4.44": "generationQualifier",
    "2.5.4.45": "x500UniqueIdentifier",
    "2.5.4.46": "dnQualifier",
    "2.5.4.65": "pseudonym",
    "2.5.4.97": "organizationIdentifier",
    "1.2.840.113549.1.9.1": "emailAddress",
    "1.2.840.113549.1.9.2": "unstructuredName",
    "0.9.2342.19200300.100.1.1": "UID",
    "0.9.2342.19200300.100.1.25": "DC",
    "1.3.6.1.4.1.311.60.2.1.1": "jurisdictionL",
    "1.3.6.1.4.1.311.60.2.1.2": "jurisdictionST",
    "1.3.6.1.4.1.311.60.2.1.3": "jurisdictionC",
}

# otherName types openssl knows, with the string type it requires.
_OTHER_NAMES = {
    "1.3.6.1.4.1.311.20.2.3": ("UPN", 0x0C),
    "1.3.6.1.5.5.7.8.9": ("SmtpUTF8Mailbox", 0x0C),
    "1.3.6.1.5.5.7.8.5": ("XmppAddr", 0x0C),
    "1.3.6.1.5.5.7.8.7": ("SRVName", 0x16),
    "1.3.6.1.5.5.7.8.8": ("NAIRealm", 0x0C),
}
# Long names openssl prints for other well-known OIDs (OBJ_obj2txt).
OID_LONG_NAMES = {
    "1.3.6.1.5.5.7.8.3": "Permanent Identifier",
}
_UTF8_STRING, _IA5_STRING = 0x0C, 0x16
_WIDE_TYPES = (_ASN1Type.UTF8String, _ASN1Type.BMPString, _ASN1Type.UniversalString)


def label(oid: x509.ObjectIdentifier) -> str:
    return ATTRIBUTE_LABELS.get(oid.dotted_string, oid.dotted_string)


def _escape_rfc2253(text: str) -> str:
    """One value under openssl's `oneline` flags (ESC_2253, ESC_CTRL, ESC_MSB,
    ESC_QUOTE, UTF8_CONVERT): specials force quotes, `"` and `\\` get a
    backslash, control and non-ASCII bytes become `\\HH` of their UTF-8."""
    raw = text.encode("utf-8")
    out: list[str] = []
    quote = False
    for position, byte in enumerate(raw):
        char = chr(byte)
        if byte < 0x20 or byte >= 0x7F:
            out.append(f"\\{byte:02X}")
        elif (
            char in ",+;<>"
            or (char == " " and position in (0, len(raw) - 1))
            or (char == "#" and position == 0)
        ):
            quote = True
            out.append(char)
        elif char in '"\\':
            out.append("\\" + char)
        else:
            out.append(char)
    joined = "".join(out)
    return f'"{joined}"' if quote else joined


def _bit_string_dump(value: bytes) -> str:
    """openssl dumps types it cannot print as `#` and their DER in hex.
    `value` is the BIT STRING's content: unused-bit count, then the bits."""
    content = value if len(value) > 1 else b"\x00"  # openssl re-encodes an empty one
    return "#" + der.encode(der.BIT_STRING, content).hex().upper()


def _converted_text(attribute: x509.NameAttribute[str | bytes], value: str) -> str:
    """The text openssl converts to UTF-8 for `oneline`: it reads the bytes of
    one-byte string types (T61String, IA5String, ...) as Latin-1."""
    if attribute._type in _WIDE_TYPES:  # the encoded string type; no public API
        return value
    return value.encode("utf-8").decode("latin-1")


def name_text(name: x509.Name | x509.RelativeDistinguishedName) -> str:
    """`C = DE, O = "a, b", CN = x`, as `openssl x509 -text` prints a name."""
    rdns = [name] if isinstance(name, x509.RelativeDistinguishedName) else name.rdns
    parts = []
    for rdn in rdns:
        values = []
        for attribute in rdn:
            value = attribute.value
            if isinstance(value, str):
                shown = _escape_rfc2253(_converted_text(attribute, value))
            else:
                shown = _bit_string_dump(value)
            values.append(f"{label(attribute.oid)} = {shown}")
        parts.append(" + ".join(values))
    return ", ".join(parts)


def _raw_bytes(attribute: x509.NameAttribute[str | bytes]) -> bytes:
    """The attribute's bytes in its own ASN.1 string type, as openssl keeps them."""
    value = attribute.value
    if not isinstance(value, str):
        return bytes(value)[1:]  # a BIT STRING without its unused-bits byte
    kind = attribute._type  # the encoded string type; public API has none
    if kind == _ASN1Type.BMPString:
        return value.encode("utf-16-be")
    if kind == _ASN1Type.UniversalString:
        return value.encode("utf-32-be")
    # cryptography reads every other string type as UTF-8.
    return value.encode("utf-8")


def oneline(name: x509.Name) -> str:
    """`/C=DE/O=a\\/b/CN=x`: X509_NAME_oneline, escaping `/`, `+` and
    unprintable bytes. openssl cuts this form at 255 characters; pisec
    shows it whole."""
    parts = []
    for rdn in name.rdns:
        for position, attribute in enumerate(rdn):
            escaped = []
            for byte in _raw_bytes(attribute):
                if byte < 0x20 or byte > 0x7E:
                    escaped.append(f"\\x{byte:02X}")
                elif chr(byte) in "/+":
                    escaped.append("\\" + chr(byte))
                else:
                    escaped.append(chr(byte))
            separator = "+" if position else "/"
            parts.append(f"{separator}{label(attribute.oid)}={''.join(escaped)}")
    return "".join(parts)


def _ip_text(packed: bytes) -> str:
    """ossl_ipaddr_to_asc: dotted quad, or eight uncompressed uppercase groups."""
    if len(packed) == 4:
        return ".".join(str(byte) for byte in packed)
    if len(packed) == 16:
        return ":".join(f"{int.from_bytes(packed[i : i + 2], 'big'):X}" for i in range(0, 16, 2))
    return f"<invalid length={len(packed)}>"


def _other_name(other: x509.OtherName, form: Form) -> str:
    oid = other.type_id.dotted_string
    known = _OTHER_NAMES.get(oid)
    try:
        element = der.read_tlv(other.value)
        string_type, text = element.tag, element.value.decode("utf-8", errors="replace")
    except der.DerError:
        string_type, text = -1, ""
    if form == "print":
        if known is None or string_type != known[1]:
            return "othername:<unsupported>"
        return f"othername:{known[0]}:{text}"
    if known is not None:
        # openssl gives up on the whole extension when a known type holds the
        # wrong string type; pisec marks just this entry.
        shown = text if string_type == known[1] else "<unsupported>"
        return f"othername: {known[0]}::{shown}"
    shown = text if string_type in (_UTF8_STRING, _IA5_STRING) else "<unsupported>"
    return f"othername: {OID_LONG_NAMES.get(oid, oid)}::{shown}"


def general_name(name: x509.GeneralName, form: Form = "list") -> str:
    """One general name as openssl prints it in the given context."""
    if isinstance(name, x509.DNSName):
        return f"DNS:{name.value}"
    if isinstance(name, x509.IPAddress):
        value = name.value
        if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return f"IP Address:{_ip_text(value.packed)}"
        packed = value.network_address.packed + value.netmask.packed
        return f"IP Address:{_ip_text(packed)}"
    if isinstance(name, x509.RFC822Name):
        return f"email:{name.value}"
    if isinstance(name, x509.UniformResourceIdentifier):
        return f"URI:{name.value}"
    if isinstance(name, x509.DirectoryName):
        return "DirName:" + (oneline(name.value) if form == "list" else name_text(name.value))
    if isinstance(name, x509.RegisteredID):
        oid = name.value.dotted_string
        return f"Registered ID:{OID_LONG_NAMES.get(oid, oid)}"
    if isinstance(name, x509.OtherName):
        return _other_name(name, form)
    return f"<unsupported {type(name).__name__}>"


def constraint(name: x509.GeneralName) -> str:
    """A name-constraints subtree: IP ranges as address/netmask, the rest printed."""
    if isinstance(name, x509.IPAddress) and isinstance(
        name.value, ipaddress.IPv4Network | ipaddress.IPv6Network
    ):
        network = name.value
        return f"IP:{_ip_text(network.network_address.packed)}/{_ip_text(network.netmask.packed)}"
    return general_name(name, "print")
