"""openssl's names for what certificates say, by OID, and how pisec writes
serials and fingerprints (the form `openssl x509` prints)."""

from __future__ import annotations

from typing import Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509.oid import ExtensionOID

# openssl's names for signature algorithms, by OID.
SIGNATURE_ALGORITHMS = {
    "1.2.840.113549.1.1.4": "md5WithRSAEncryption",
    "1.2.840.113549.1.1.5": "sha1WithRSAEncryption",
    "1.2.840.113549.1.1.10": "rsassaPss",
    "1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
    "1.2.840.113549.1.1.12": "sha384WithRSAEncryption",
    "1.2.840.113549.1.1.13": "sha512WithRSAEncryption",
    "1.2.840.113549.1.1.14": "sha224WithRSAEncryption",
    "1.2.840.10045.4.1": "ecdsa-with-SHA1",
    "1.2.840.10045.4.3.1": "ecdsa-with-SHA224",
    "1.2.840.10045.4.3.2": "ecdsa-with-SHA256",
    "1.2.840.10045.4.3.3": "ecdsa-with-SHA384",
    "1.2.840.10045.4.3.4": "ecdsa-with-SHA512",
    "1.3.101.112": "ED25519",
    "1.3.101.113": "ED448",
    "1.2.840.10040.4.3": "dsaWithSHA1",
    "2.16.840.1.101.3.4.3.1": "dsa_with_SHA224",
    "2.16.840.1.101.3.4.3.2": "dsa_with_SHA256",
    "1.2.156.10197.1.501": "SM2-with-SM3",
}

# openssl's "Public Key Algorithm" names, by OID.
KEY_ALGORITHMS = {
    "1.2.840.113549.1.1.1": "rsaEncryption",
    "1.2.840.113549.1.1.10": "rsassaPss",
    "1.2.840.10045.2.1": "id-ecPublicKey",
    "1.3.101.110": "X25519",
    "1.3.101.111": "X448",
    "1.3.101.112": "ED25519",
    "1.3.101.113": "ED448",
    "1.2.840.10040.4.1": "dsaEncryption",
    "1.2.840.113549.1.3.1": "dhKeyAgreement",
    "1.2.840.10046.2.1": "X9.42 DH",
    "1.2.156.10197.1.301": "SM2",
}
EC_PUBLIC_KEY = "1.2.840.10045.2.1"

NIST_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
ASN1_CURVES = {"secp256r1": "prime256v1", "secp192r1": "prime192v1"}
# Curves cryptography cannot load, by OID, named as openssl names them.
OTHER_CURVES = {"1.2.156.10197.1.301": "SM2"}

KEY_USAGES = (
    ("digital_signature", "Digital Signature"),
    ("content_commitment", "Non Repudiation"),
    ("key_encipherment", "Key Encipherment"),
    ("data_encipherment", "Data Encipherment"),
    ("key_agreement", "Key Agreement"),
    ("key_cert_sign", "Certificate Sign"),
    ("crl_sign", "CRL Sign"),
)

EXTENDED_KEY_USAGES = {
    "1.3.6.1.5.5.7.3.1": "TLS Web Server Authentication",
    "1.3.6.1.5.5.7.3.2": "TLS Web Client Authentication",
    "1.3.6.1.5.5.7.3.3": "Code Signing",
    "1.3.6.1.5.5.7.3.4": "E-mail Protection",
    "1.3.6.1.5.5.7.3.5": "IPSec End System",
    "1.3.6.1.5.5.7.3.6": "IPSec Tunnel",
    "1.3.6.1.5.5.7.3.7": "IPSec User",
    "1.3.6.1.5.5.7.3.8": "Time Stamping",
    "1.3.6.1.5.5.7.3.9": "OCSP Signing",
    "1.3.6.1.5.5.7.3.17": "ipsec Internet Key Exchange",
    "1.3.6.1.4.1.311.20.2.2": "Microsoft Smartcard Login",
    "2.5.29.37.0": "Any Extended Key Usage",
}

EXTENSION_TITLES = {
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string: "X509v3 Subject Alternative Name",
    ExtensionOID.ISSUER_ALTERNATIVE_NAME.dotted_string: "X509v3 Issuer Alternative Name",
    ExtensionOID.BASIC_CONSTRAINTS.dotted_string: "X509v3 Basic Constraints",
    ExtensionOID.KEY_USAGE.dotted_string: "X509v3 Key Usage",
    ExtensionOID.EXTENDED_KEY_USAGE.dotted_string: "X509v3 Extended Key Usage",
    ExtensionOID.SUBJECT_KEY_IDENTIFIER.dotted_string: "X509v3 Subject Key Identifier",
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER.dotted_string: "X509v3 Authority Key Identifier",
    ExtensionOID.CRL_DISTRIBUTION_POINTS.dotted_string: "X509v3 CRL Distribution Points",
    ExtensionOID.NAME_CONSTRAINTS.dotted_string: "X509v3 Name Constraints",
    ExtensionOID.CERTIFICATE_POLICIES.dotted_string: "X509v3 Certificate Policies",
    ExtensionOID.AUTHORITY_INFORMATION_ACCESS.dotted_string: "Authority Information Access",
}

ACCESS_METHODS = {
    "1.3.6.1.5.5.7.48.1": "OCSP",
    "1.3.6.1.5.5.7.48.2": "CA Issuers",
    "1.3.6.1.5.5.7.48.3": "Time Stamping",
    "1.3.6.1.5.5.7.48.5": "CA Repository",
}

# openssl's names for CRL reasons, in bit order (as `print_reasons` lists them).
REASONS = (
    (x509.ReasonFlags.key_compromise, "Key Compromise"),
    (x509.ReasonFlags.ca_compromise, "CA Compromise"),
    (x509.ReasonFlags.affiliation_changed, "Affiliation Changed"),
    (x509.ReasonFlags.superseded, "Superseded"),
    (x509.ReasonFlags.cessation_of_operation, "Cessation Of Operation"),
    (x509.ReasonFlags.certificate_hold, "Certificate Hold"),
    (x509.ReasonFlags.privilege_withdrawn, "Privilege Withdrawn"),
    (x509.ReasonFlags.aa_compromise, "AA Compromise"),
)

# What cryptography raises for a certificate whose extensions do not parse.
EXTENSION_ERRORS = (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)
KEY_ERRORS = (ValueError, UnsupportedAlgorithm)

Validity = Literal["valid", "not yet valid", "expired"]


def colon_hex(data: bytes, *, upper: bool = True) -> str:
    text = data.hex(":")
    return text.upper() if upper else text


def extension_title(oid: str) -> str:
    return EXTENSION_TITLES.get(oid, oid)
