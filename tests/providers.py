"""Local stand-ins for Google and Steam that speak their real protocols, for the sign-in tests.

- :class:`OidcProvider`: an OpenID Connect provider (discovery document, JWKS, the
  authorization-code flow with ``/authorize`` and ``/token``) issuing RS256 ID tokens, with key
  rotation, and a way to forge tokens for the tests that must be refused.
  It also serves a stand-in for Google Identity Services' script (``/gsi/client``): the part
  the portal uses, ``google.accounts.id.initialize({client_id, callback})`` and
  ``renderButton(element)``; its button hands the callback an ID token for ``next_login``, as
  Google's does after the person picks their account.
- :class:`SteamProvider`: an OpenID 2.0 provider shaped like Steam's: ``checkid_setup`` signs a
  positive assertion (HMAC-SHA256 over the signed fields' key-value form, stateless mode) and
  ``check_authentication`` verifies one, each nonce once.

Both approve at once, as the user the test names (no login page)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

OPENID_NS = "http://specs.openid.net/auth/2.0"

GSI_CLIENT = r"""
(function () {
  const BASE = new URL(document.currentScript.src).origin;
  let config = null;
  window.google = { accounts: { id: {
    initialize(c) { config = c; },
    renderButton(element) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Sign in with Google";
      button.onclick = async () => {
        const answer = await fetch(`${BASE}/gsi/credential?client_id=${encodeURIComponent(config.client_id)}`);
        if (answer.ok) config.callback(await answer.json());
      };
      element.replaceChildren(button);
    },
  } } };
})();
"""


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (each key once)."""
    return {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}


class OidcProvider:
    def __init__(self, base_url: str, client_id: str, client_secret: str) -> None:
        self.base_url = base_url
        self.client_id, self.client_secret = client_id, client_secret
        self.keys: list[tuple[str, rsa.RSAPrivateKey]] = []
        self.rotate()
        self.users: dict[str, dict[str, Any]] = {}
        self._codes: dict[str, dict[str, Any]] = {}
        self.next_login: str | None = None  # whom the button signs in
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/gsi/client", self.gsi_client),
                Route("/gsi/credential", self.gsi_credential),
            ]
        )

    def rotate(self) -> str:
        """A new signing key, published alongside the old ones; its kid."""
        kid = secrets.token_hex(4)
        self.keys.append((kid, rsa.generate_private_key(public_exponent=65537, key_size=2048)))
        return kid

    def user(self, login: str, email: str, verified: bool = True) -> None:
        self.users[login] = {
            "sub": f"g-{secrets.token_hex(6)}",
            "email": email,
            "verified": verified,
        }

    def sign(self, claims: dict[str, Any], key: Any = None, kid: str | None = None) -> str:
        """An RS256 token of ``claims`` (by default with the newest key)."""
        default_kid, default_key = self.keys[-1]
        return jwt.encode(
            claims, key or default_key, algorithm="RS256", headers={"kid": kid or default_kid}
        )

    def claims(self, login: str, **overrides: Any) -> dict[str, Any]:
        user, now = self.users[login], int(time.time())
        base = {
            "iss": self.base_url,
            "aud": self.client_id,
            "sub": user["sub"],
            "email": user["email"],
            "email_verified": user["verified"],
            "iat": now,
            "exp": now + 3600,
        }
        return {k: v for k, v in (base | overrides).items() if v is not None}

    async def gsi_client(self, request: Request) -> Response:
        return Response(GSI_CLIENT, media_type="application/javascript")

    async def gsi_credential(self, request: Request) -> Response:
        cors = {"Access-Control-Allow-Origin": "*"}
        if request.query_params.get("client_id") != self.client_id or self.next_login is None:
            return JSONResponse({"error": "invalid_client"}, status_code=400, headers=cors)
        credential = self.sign(self.claims(self.next_login))
        return JSONResponse({"credential": credential, "select_by": "btn"}, headers=cors)

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.base_url,
                "authorization_endpoint": f"{self.base_url}/authorize",
                "token_endpoint": f"{self.base_url}/token",
                "jwks_uri": f"{self.base_url}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    async def jwks(self, request: Request) -> Response:
        keys = []
        for kid, key in self.keys:
            public = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
            keys.append(public | {"kid": kid, "use": "sig", "alg": "RS256"})
        return JSONResponse({"keys": keys})

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if q.get("response_type") != "code" or q.get("client_id") != self.client_id:
            return JSONResponse({"error": "unauthorized_client"}, status_code=400)
        if "openid" not in q.get("scope", "").split() or q.get("login_hint") not in self.users:
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = secrets.token_urlsafe(16)
        self._codes[code] = {
            "login": q["login_hint"],
            "redirect_uri": q.get("redirect_uri"),
            "nonce": q.get("nonce"),
        }
        target = f"{q.get('redirect_uri')}?{urlencode({'code': code, 'state': q.get('state', '')})}"
        return RedirectResponse(target, status_code=302)

    async def token(self, request: Request) -> Response:
        form = await _form(request)
        grant = self._codes.pop(str(form.get("code")), None)
        if (
            form.get("grant_type") != "authorization_code"
            or grant is None
            or form.get("redirect_uri") != grant["redirect_uri"]
            or (form.get("client_id"), form.get("client_secret"))
            != (self.client_id, self.client_secret)
        ):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        id_token = self.sign(self.claims(grant["login"], nonce=grant["nonce"]))
        return JSONResponse(
            {
                "access_token": secrets.token_urlsafe(24),
                "token_type": "Bearer",
                "expires_in": 3600,
                "id_token": id_token,
            }
        )


class SteamProvider:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.endpoint = f"{base_url}/openid/login"
        self._secret = secrets.token_bytes(32)
        self._checked: set[str] = set()
        self.next_user = "76561197960287930"
        self.app = Starlette(routes=[Route("/openid/login", self.login, methods=["GET", "POST"])])

    def _sign(self, fields: dict[str, str], signed: list[str]) -> str:
        text = "".join(f"{name}:{fields['openid.' + name]}\n" for name in signed)
        return base64.b64encode(
            hmac.new(self._secret, text.encode(), hashlib.sha256).digest()
        ).decode()

    async def login(self, request: Request) -> Response:
        if request.method == "POST":
            return await self.check_authentication(request)
        q = request.query_params
        if (
            q.get("openid.ns") != OPENID_NS
            or q.get("openid.mode") != "checkid_setup"
            or not q.get("openid.return_to", "").startswith(q.get("openid.realm", "\0"))
        ):
            return PlainTextResponse("bad request", status_code=400)
        claimed = f"{self.base_url}/openid/id/{self.next_user}"
        fields = {
            "openid.ns": OPENID_NS,
            "openid.mode": "id_res",
            "openid.op_endpoint": self.endpoint,
            "openid.claimed_id": claimed,
            "openid.identity": claimed,
            "openid.return_to": q["openid.return_to"],
            "openid.response_nonce": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            + secrets.token_hex(4),
            "openid.assoc_handle": "1234567890",
        }
        signed = [
            "signed",
            "op_endpoint",
            "claimed_id",
            "identity",
            "return_to",
            "response_nonce",
            "assoc_handle",
        ]
        fields["openid.signed"] = ",".join(signed)
        fields["openid.sig"] = self._sign(fields, signed)
        return RedirectResponse(f"{q['openid.return_to']}?{urlencode(fields)}", status_code=302)

    async def check_authentication(self, request: Request) -> Response:
        form = await _form(request)
        signed = form.get("openid.signed", "").split(",")
        valid = (
            form.get("openid.mode") == "check_authentication"
            and all(f"openid.{name}" in form for name in signed if name != "signed")
            and hmac.compare_digest(
                self._sign(form | {"openid.signed": form.get("openid.signed", "")}, signed),
                form.get("openid.sig", ""),
            )
            and form.get("openid.response_nonce", "") not in self._checked
        )
        if valid:
            self._checked.add(form["openid.response_nonce"])
        return PlainTextResponse(f"ns:{OPENID_NS}\nis_valid:{'true' if valid else 'false'}\n")
