"""An IAM Identity Center stand-in on 127.0.0.1: the SSO portal's GetRoleCredentials and SSO OIDC's
CreateToken (refresh_token grant), on one port.

The portal hands out credentials from `issue()` (a function returning (Credentials, expiration
datetime)) only for a bearer token in `valid_tokens`; a refresh hands out `bearer-refreshed` for the
expected client and refresh token and makes it valid."""

import json
from urllib.parse import parse_qs, urlsplit

from support.stub_http import Reply, Request, StubServer

REFRESHED_TOKEN = "bearer-refreshed"


class SsoStandIn(StubServer):
    def __init__(self, issue, valid_token: str, account_id: str, role_name: str,
                 client: tuple[str, str, str] | None = None):
        """client: (clientId, clientSecret, refreshToken) a CreateToken call must present."""
        self.valid_tokens = {valid_token}
        self.account_id = account_id
        self.role_name = role_name
        self.client = client
        self.issued = []  # (Credentials, expiration) in order
        self.problems: list[str] = []
        self._issue = issue
        super().__init__(self._answer)

    def _answer(self, request: Request) -> Reply:
        url = urlsplit(request.path)
        if request.method == "GET" and url.path == "/federation/credentials":
            return self._role_credentials(request, parse_qs(url.query))
        if request.method == "POST" and url.path == "/token":
            return self._create_token(request)
        return Reply(404)

    def _role_credentials(self, request: Request, query: dict) -> Reply:
        if query != {"account_id": [self.account_id], "role_name": [self.role_name]}:
            self.problems.append(f"unexpected query {query}")
            return Reply(400, json.dumps({"message": "wrong account or role"}).encode())
        if request.headers.get("x-amz-sso_bearer_token") not in self.valid_tokens:
            return Reply(401, json.dumps({"message": "Session token not found or invalid"}).encode(),
                         {"x-amzn-ErrorType": "UnauthorizedException"})
        credentials, expiration = self._issue()
        self.issued.append((credentials, expiration))
        return Reply(200, json.dumps({"roleCredentials": {
            "accessKeyId": credentials.access_key_id,
            "secretAccessKey": credentials.secret_access_key,
            "sessionToken": credentials.session_token,
            "expiration": int(expiration.timestamp() * 1000),
        }}).encode())

    def _create_token(self, request: Request) -> Reply:
        body = json.loads(request.body or b"{}")
        expected = None
        if self.client:
            client_id, client_secret, refresh_token = self.client
            expected = {"clientId": client_id, "clientSecret": client_secret, "grantType": "refresh_token",
                        "refreshToken": refresh_token}
        if body != expected:
            self.problems.append(f"unexpected CreateToken request with keys {sorted(body)}")
            return Reply(400, json.dumps({"error": "invalid_grant"}).encode())
        self.valid_tokens.add(REFRESHED_TOKEN)
        return Reply(200, json.dumps({"accessToken": REFRESHED_TOKEN, "tokenType": "Bearer", "expiresIn": 3600,
                                      "refreshToken": "refresh-token-2"}).encode())
