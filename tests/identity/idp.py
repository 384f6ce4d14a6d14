"""A test identity provider: a key and certificate generated in the test, SAML responses
built as XML and signed with python3-saml's own signing utility (xmlsec underneath)."""

from __future__ import annotations

import base64
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

NS = ('xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
      'xmlns:xs="http://www.w3.org/2001/XMLSchema" '
      'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"')


@dataclass(frozen=True)
class KeyPair:
    key_pem: str
    cert_pem: str

    @property
    def cert_body(self) -> str:
        return "".join(line for line in self.cert_pem.splitlines() if "-----" not in line)


def make_keypair(common_name: str = "Test IdP", *, expired: bool = False) -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC) - (timedelta(days=400) if expired else timedelta(0))
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=365))
            .sign(key, hashes.SHA256()))
    return KeyPair(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()).decode(),
        cert.public_bytes(serialization.Encoding.PEM).decode())


def _t(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Assertion:
    """What goes into one response; every field can be made wrong by a test."""

    issuer: str
    audience: str
    recipient: str
    destination: str
    name_id: str
    in_response_to: str | None
    email: str = ""
    groups: list[str] = field(default_factory=list)
    not_before: datetime | None = None
    not_on_or_after: datetime | None = None
    assertion_id: str = field(default_factory=lambda: f"_a{uuid.uuid4().hex}")
    response_issuer: str | None = None

    def assertion_xml(self) -> str:
        now = datetime.now(UTC)
        nb = self.not_before or now - timedelta(minutes=1)
        noa = self.not_on_or_after or now + timedelta(minutes=5)
        irt = f' InResponseTo="{self.in_response_to}"' if self.in_response_to else ""
        attrs = ""
        if self.email:
            attrs += ('<saml:Attribute Name="email"><saml:AttributeValue xsi:type="xs:string">'
                      f"{self.email}</saml:AttributeValue></saml:Attribute>")
        if self.groups:
            attrs += '<saml:Attribute Name="groups">' + "".join(
                f'<saml:AttributeValue xsi:type="xs:string">{g}</saml:AttributeValue>'
                for g in self.groups) + "</saml:Attribute>"
        statement = f"<saml:AttributeStatement>{attrs}</saml:AttributeStatement>" if attrs else ""
        return (
            f'<saml:Assertion {NS} ID="{self.assertion_id}" Version="2.0" '
            f'IssueInstant="{_t(now)}">'
            f"<saml:Issuer>{self.issuer}</saml:Issuer>"
            "<saml:Subject>"
            '<saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">'
            f"{self.name_id}</saml:NameID>"
            '<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
            f'<saml:SubjectConfirmationData NotOnOrAfter="{_t(noa)}" '
            f'Recipient="{self.recipient}"{irt}/>'
            "</saml:SubjectConfirmation></saml:Subject>"
            f'<saml:Conditions NotBefore="{_t(nb)}" NotOnOrAfter="{_t(noa)}">'
            f"<saml:AudienceRestriction><saml:Audience>{self.audience}</saml:Audience>"
            "</saml:AudienceRestriction></saml:Conditions>"
            f'<saml:AuthnStatement AuthnInstant="{_t(now)}" SessionIndex="_s{uuid.uuid4().hex}">'
            "<saml:AuthnContext><saml:AuthnContextClassRef>"
            "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
            "</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>"
            f"{statement}</saml:Assertion>"
        )

    def response_xml(self, assertions: str) -> str:
        irt = f' InResponseTo="{self.in_response_to}"' if self.in_response_to else ""
        return (
            '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
            'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
            f'ID="_r{uuid.uuid4().hex}" Version="2.0" IssueInstant="{_t(datetime.now(UTC))}" '
            f'Destination="{self.destination}"{irt}>'
            f"<saml:Issuer>{self.response_issuer or self.issuer}</saml:Issuer>"
            '<samlp:Status><samlp:StatusCode '
            'Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>'
            f"{assertions}</samlp:Response>"
        )


def sign(xml: str, keys: KeyPair, *, sha1: bool = False) -> str:
    signed = OneLogin_Saml2_Utils.add_sign(
        xml, keys.key_pem, keys.cert_pem,
        sign_algorithm=C.RSA_SHA1 if sha1 else C.RSA_SHA256,
        digest_algorithm=C.SHA1 if sha1 else C.SHA256)
    return signed.decode() if isinstance(signed, bytes) else str(signed)


def encode(xml: str) -> str:
    return base64.b64encode(xml.encode()).decode()


def metadata_xml(entity_id: str, sso_url: str, cert_body: str | None) -> str:
    key = (f'<md:KeyDescriptor use="signing"><ds:KeyInfo '
           f'xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>'
           f"{cert_body}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
           if cert_body else "")
    return (
        '<?xml version="1.0"?>'
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        f'entityID="{entity_id}"><md:IDPSSODescriptor '
        'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        f"{key}"
        '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" '
        f'Location="{sso_url}"/></md:IDPSSODescriptor></md:EntityDescriptor>'
    )


# --- a loopback IdP over HTTP (for metadata by URL and browser journeys) -------------------

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"


@dataclass
class IdpUser:
    """The person the loopback IdP signs in, whoever asks."""

    name_id: str = "00u-sam"
    email: str = "sam@acme.example"
    groups: list[str] = field(default_factory=lambda: ["engineering"])


@dataclass
class Served:
    """A canned answer for one path (to serve broken, huge or redirecting metadata)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class LoopbackSamlIdp:
    """A SAML IdP on 127.0.0.1 (plain HTTP, a thread): `/metadata` serves its metadata with the
    signing certificate; `/sso` (HTTP-Redirect binding) decodes the AuthnRequest, and answers
    with an auto-submitting form that POSTs a response signed with its generated key to the
    request's ACS URL, InResponseTo set to the request's ID. `served` overrides any path."""

    def __init__(self, keys: KeyPair | None = None, user: IdpUser | None = None) -> None:
        self.keys = keys or make_keypair("Loopback IdP")
        self.user = user or IdpUser()
        self.served: dict[str, Served] = {}
        self.authn_requests: list[dict[str, str]] = []
        self.paths: list[str] = []  # every GET, to prove what Station fetched and when
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.entity_id = f"{self.base}/metadata"
        self.metadata_url = f"{self.base}/metadata"
        self.sso_url = f"{self.base}/sso"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def metadata(self) -> str:
        return metadata_xml(self.entity_id, self.sso_url, self.keys.cert_body)

    def read_authn_request(self, encoded: str) -> dict[str, str]:
        """ID, ACS URL and issuer (the SP entity id) of a deflated, base64 AuthnRequest."""
        root = OneLogin_Saml2_XML.to_etree(  # DTDs and entities refused
            OneLogin_Saml2_Utils.decode_base64_and_inflate(encoded))
        issuer = root.find(f"{{{SAML}}}Issuer")
        return {"id": root.attrib["ID"], "acs_url": root.attrib["AssertionConsumerServiceURL"],
                "sp_entity_id": (issuer.text or "") if issuer is not None else ""}

    def response_form(self, request: dict[str, str], relay_state: str) -> str:
        a = Assertion(issuer=self.entity_id, audience=request["sp_entity_id"],
                      recipient=request["acs_url"], destination=request["acs_url"],
                      name_id=self.user.name_id, in_response_to=request["id"],
                      email=self.user.email, groups=list(self.user.groups))
        saml_response = encode(a.response_xml(sign(a.assertion_xml(), self.keys)))
        return (
            "<!doctype html><html><head><title>Loopback IdP</title></head>"
            '<body onload="document.forms[0].submit()"><p>Signing you in…</p>'
            f'<form method="post" action="{escape(request["acs_url"])}">'
            f'<input type="hidden" name="SAMLResponse" value="{escape(saml_response)}">'
            f'<input type="hidden" name="RelayState" value="{escape(relay_state)}">'
            "<noscript><button type=\"submit\">Continue</button></noscript>"
            "</form></body></html>")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                idp.paths.append(parts.path)
                if parts.path in idp.served:
                    canned = idp.served[parts.path]
                    return self._send(canned.status, canned.body, canned.headers)
                if parts.path == "/metadata":
                    return self._send(200, idp.metadata().encode(),
                                      {"Content-Type": "application/samlmetadata+xml"})
                if parts.path == "/sso":
                    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                    request = idp.read_authn_request(query["SAMLRequest"])
                    idp.authn_requests.append(request)
                    page = idp.response_form(request, query.get("RelayState", ""))
                    return self._send(200, page.encode(),
                                      {"Content-Type": "text/html; charset=utf-8"})
                return self._send(404, b"not found", {"Content-Type": "text/plain"})

        return Handler
