"""An HTTPS server on loopback with a certificate from a CA made in the test, and a resolver
the test controls, for the clients that connect to tenant URLs (station.core.egress): they
must connect to the address they judged and still check the certificate against the name."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from station.core import egress

NAME = "service.pinning.test"
PUBLIC = "93.184.216.34"  # what the name resolves to while it is checked


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(tmp: Path, dns_name: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for `dns_name` signed by it: (ca, cert, key) files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Test CA")).issuer_name(_name("Test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(dns_name)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@dataclass
class TlsServer:
    port: int
    hosts: list[str]  # the Host header of each request served


def _serve(cert: Path, key: Path) -> tuple[TlsServer, ThreadingHTTPServer]:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.append(self.headers.get("Host", ""))
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return TlsServer(server.server_port, seen), server


@contextmanager
def tls_server(tmp: Path, monkeypatch: pytest.MonkeyPatch,
               dns_name: str = NAME) -> Iterator[TlsServer]:
    """An HTTPS server on 127.0.0.1 whose certificate names `dns_name`, from a CA that
    requests and httpx trust for the test (their CA-bundle environment variables)."""
    ca, cert, key = _issue(tmp, dns_name)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    served, server = _serve(cert, key)
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


def resolve_in_turn(monkeypatch: pytest.MonkeyPatch, answers: list[str]) -> list[str]:
    """Resolve NAME to `answers` in turn (the last one from then on); other names as usual.
    Returns the log of lookups of NAME."""
    real = socket.getaddrinfo
    looked_up: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != NAME:
            return real(host, port, *args, **kwargs)
        address = answers[min(len(looked_up), len(answers) - 1)]
        looked_up.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                 (address, int(port or 0)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return looked_up


def trust_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Judge 127.0.0.1 public, as if the test server were on the internet."""
    real = egress.is_public
    monkeypatch.setattr(egress, "is_public", lambda address: str(address) == "127.0.0.1"
                        or real(address))
