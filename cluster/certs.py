"""The stack's certificate authority (`<home>/tls/`): `gantry up` makes it once, then issues the
control plane's server certificate (the API, the coordinators' host endpoints, the stores, Redis)
and one per host for its peer server. Clients verify against `ca.pem`; nothing else is trusted.

A real cluster brings its own: the stack file names the CA and the server certificate, and
`gantry host add --print` issues a host's from this CA only for a local stack."""
from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gantry.topology import write_private

CA_DAYS, LEAF_DAYS = 3650, 397   # a leaf is re-issued at every `gantry up`; 397 days is the browsers' cap


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gantry"), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries = []
    for n in dict.fromkeys(names):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(n.strip("[]"))))
        except ValueError:
            entries.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(entries)


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


class StackCA:
    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.ca_file, self.ca_key_file = self.dir / "ca.pem", self.dir / "ca.key"

    def ensure(self) -> "StackCA":
        """The CA, made on first use and kept: every certificate a host holds stays valid across restarts."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.ca_file.exists() and self.ca_key_file.exists():
            return self
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        name = _name("gantry stack CA")
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CA_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                             crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        write_private(self.ca_key_file, _pem_key(key))
        self.ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return self

    def issue(self, name: str, addresses: list[str], client: bool = False) -> tuple[Path, Path]:
        """A certificate for `addresses` (IPs or DNS names) signed by this CA: (cert file, key file)
        in the CA's directory as <name>.pem and <name>.key. `client`: it may also authenticate as a client."""
        if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"certificate name {name!r}: letters, digits, '-', '_' and '.' only")
        ca_key = serialization.load_pem_private_key(self.ca_key_file.read_bytes(), None)
        ca = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
                .add_extension(_san(addresses), critical=False)
                .sign(ca_key, hashes.SHA256()))
        cert_file, key_file = self.dir / f"{name}.pem", self.dir / f"{name}.key"
        write_private(key_file, _pem_key(key))
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cert_file, key_file
