"""A loopback OpenID Connect provider for tests: discovery, JWKS, authorize (redirects back with
a code) and token endpoint (an ID token signed with a key made here). Never the network.

`tamper` lets a test change the next ID token: claims to override or drop, the algorithm, and
the key that signs it (e.g. another key, or `alg=none`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "station-client"
CLIENT_SECRET = "oidc-client-secret-5f2c9d"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Tamper:
    claims: dict[str, Any] = field(default_factory=dict)
    drop: list[str] = field(default_factory=list)
    alg: str = "RS256"
    key: Any = None  # signing key; None: the IdP's own
    kid: str = "idp-key-1"


class LoopbackIdp:
    def __init__(self) -> None:
        self.key = new_key()
        self.kid = "idp-key-1"
        self.codes: dict[str, dict[str, Any]] = {}
        self.user: dict[str, Any] = {"sub": "00u-alice", "email": "alice@acme.example",
                                     "email_verified": True, "name": "Alice Doe",
                                     "groups": ["engineering"]}
        self.tamper = Tamper()
        self.token_requests: list[dict[str, Any]] = []
        self.jwks_requests = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.issuer = self.base
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- documents --------------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        return {"issuer": self.issuer, "authorization_endpoint": f"{self.base}/authorize",
                "token_endpoint": f"{self.base}/token", "jwks_uri": f"{self.base}/jwks",
                "id_token_signing_alg_values_supported": ["RS256"]}

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def id_token(self, nonce: str) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {"iss": self.issuer, "aud": CLIENT_ID, "iat": now,
                                  "exp": now + 300, "nonce": nonce, **self.user}
        claims.update(self.tamper.claims)
        for name in self.tamper.drop:
            claims.pop(name, None)
        headers = {"kid": self.tamper.kid}
        if self.tamper.alg == "none":
            return jwt.encode(claims, "", algorithm="none", headers=headers)
        if self.tamper.alg.startswith("HS"):
            # HMAC keyed with public key material: the classic key-confusion forgery.
            secret = self.jwks()["keys"][0]["n"].encode()
            return jwt.encode(claims, secret, algorithm=self.tamper.alg, headers=headers)
        return jwt.encode(claims, self.tamper.key or self.key, algorithm=self.tamper.alg,
                          headers=headers)

    # -- HTTP --------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, body: Any, status: int = 200) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path == "/.well-known/openid-configuration":
                    return self._json(idp.discovery())
                if parts.path == "/jwks":
                    idp.jwks_requests += 1
                    return self._json(idp.jwks())
                if parts.path == "/authorize":
                    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
                    code = secrets.token_urlsafe(16)
                    idp.codes[code] = q
                    self.send_response(302)
                    self.send_header("Location", q["redirect_uri"] + "?" + urlencode(
                        {"code": code, "state": q["state"]}))
                    self.end_headers()
                    return None
                return self._json({"error": "not_found"}, 404)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                idp.token_requests.append({"form": form,
                                           "authorization": self.headers.get("Authorization")})
                expected = "Basic " + base64.b64encode(
                    f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    return self._json({"error": "invalid_client"}, 401)
                request = idp.codes.pop(form.get("code", ""), None)
                if request is None or form.get("redirect_uri") != request["redirect_uri"]:
                    return self._json({"error": "invalid_grant"}, 400)
                challenge = base64.urlsafe_b64encode(hashlib.sha256(
                    form.get("code_verifier", "").encode()).digest()).rstrip(b"=").decode()
                if challenge != request["code_challenge"]:
                    return self._json({"error": "invalid_grant", "pkce": "mismatch"}, 400)
                return self._json({"access_token": "at-" + secrets.token_urlsafe(8),
                                   "token_type": "Bearer",
                                   "id_token": idp.id_token(request.get("nonce", ""))})

        return Handler
