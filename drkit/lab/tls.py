"""The lab's certificate authority and the control plane's TLS certificate.

A private S3 endpoint is reached over TLS with the organisation's CA in the
client's trust store; pgBackRest only speaks S3 over TLS and never without
verification. The lab is that organisation: it makes a CA and a server
certificate for the control plane's names, and clients are given the CA file,
exactly as they would be given a corporate CA. Nothing turns verification off.

``python -m drkit.lab.tls --out DIR --name s3.cloud.lab --ip 10.77.0.2`` writes
``ca.crt``, ``server.crt`` and ``server.key`` (0600) into DIR; files that exist
and still cover the names are kept.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from drkit.fsutil import atomic_write_text

#: How long the lab's certificates are valid; a lab lives days, not years.
VALIDITY = dt.timedelta(days=90)


@dataclass(frozen=True)
class TlsFiles:
    """Where a CA and one server certificate live."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"


def _covers(cert_path: Path, names: list[str], ips: list[str]) -> bool:
    """Whether an existing certificate names every DNS name and IP and is not near expiry."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return False
    if cert.not_valid_after_utc - dt.datetime.now(dt.UTC) < dt.timedelta(days=7):
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have_names = set(san.get_values_for_type(x509.DNSName))
    have_ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return set(names) <= have_names and set(ips) <= have_ips


def ensure(directory: Path, names: list[str], ips: list[str]) -> TlsFiles:
    """A CA and a server certificate for ``names`` and ``ips`` in ``directory``.

    Kept when they exist and still cover the names (clients that already trust
    the CA keep working across ``lab.up`` runs); made afresh otherwise.
    """
    files = TlsFiles(directory)
    if (files.ca_cert.exists() and files.server_key.exists()
            and _covers(files.server_cert, names, ips)):
        return files
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "drkit lab CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt = [x509.DNSName(n) for n in names] + [
        x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    no_pass = serialization.NoEncryption()
    pkcs8 = serialization.PrivateFormat.PKCS8
    # Temp files are created 0600 (mkstemp), so a key is never readable by others.
    atomic_write_text(files.ca_key, ca_key.private_bytes(pem, pkcs8, no_pass).decode())
    atomic_write_text(files.server_key, key.private_bytes(pem, pkcs8, no_pass).decode())
    for path, certificate in ((files.ca_cert, ca_cert), (files.server_cert, cert)):
        atomic_write_text(path, certificate.public_bytes(pem).decode())
        os.chmod(path, 0o644)
    return files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="directory for the files")
    parser.add_argument("--name", action="append", default=[], help="DNS name (repeatable)")
    parser.add_argument("--ip", action="append", default=[], help="IP address (repeatable)")
    args = parser.parse_args(argv)
    if not args.name:
        parser.error("at least one --name")
    files = ensure(args.out, args.name, args.ip)
    print(files.ca_cert)


if __name__ == "__main__":
    main()
