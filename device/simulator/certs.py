"""Throwaway TLS material for local servers (the simulator and tests): a CA and a loopback cert."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class CertFiles:
    """PEM files: the CA to trust, and the server's certificate chain and key."""

    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        """TLS context for a server presenting the loopback certificate."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """TLS context for a client that trusts only the throwaway CA."""
        return ssl.create_default_context(cafile=str(self.ca))


def ensure_certs(cert_dir: str | Path) -> CertFiles:
    """Reuse the CA and certificate in cert_dir, or make new ones (SAN 127.0.0.1, ::1, localhost)."""
    d = Path(cert_dir)
    files = CertFiles(d / "ca.pem", d / "server.pem", d / "server.key")
    if all(p.exists() for p in (files.ca, files.cert, files.key)):
        return files
    d.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="livespeaker local simulator")
    cert = ca.issue_cert("127.0.0.1", "::1", "localhost")
    ca.cert_pem.write_to_path(str(files.ca))
    cert.cert_chain_pems[0].write_to_path(str(files.cert))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(files.cert), append=True)
    cert.private_key_pem.write_to_path(str(files.key))
    files.key.chmod(0o600)
    return files
