"""Stand in for time passing: give a device bundle a certificate that
expired yesterday, signed by the fleet CA and in its record of issued
certificates, for the same key and with the same extensions as the one it
replaces. Usage: expire_bundle.py CA_DIR PASSPHRASE_FILE BUNDLE_DIR NAME
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization


def main(ca_dir: Path, passphrase_file: Path, bundle_dir: Path, name: str) -> None:
    ca = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key(
        (ca_dir / "ca.key").read_bytes(), password=passphrase_file.read_bytes().strip()
    )
    path = bundle_dir / name / f"{name}.crt"
    current = x509.load_pem_x509_certificate(path.read_bytes())
    now = datetime.now(UTC)
    builder = x509.CertificateBuilder(
        issuer_name=ca.subject,
        subject_name=current.subject,
        public_key=current.public_key(),
        serial_number=x509.random_serial_number(),
        not_valid_before=now - timedelta(days=31),
        not_valid_after=now - timedelta(days=1),
        extensions=list(current.extensions),
    )
    expired = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    pem = expired.public_bytes(serialization.Encoding.PEM)
    serial = f"{expired.serial_number:X}"
    record = ca_dir / "issued" / f"{'0' * (len(serial) % 2)}{serial}.pem"
    record.write_bytes(pem)
    record.chmod(0o600)
    path.write_bytes(pem)
    print(f"{'0' * (len(serial) % 2)}{serial}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
