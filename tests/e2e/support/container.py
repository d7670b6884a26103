"""A container credentials endpoint stand-in (ECS agent / EKS Pod Identity agent) on 127.0.0.1.

It answers only requests whose Authorization header is the expected token, with credentials from
`issue()` (a function returning (Credentials, expiration datetime))."""

import json

from support.imds import iso
from support.stub_http import Reply, Request, StubServer

PATH = "/v1/credentials"


class ContainerStandIn(StubServer):
    def __init__(self, issue, authorization: str):
        self.authorization = authorization
        self.issued = []  # (Credentials, expiration) in order
        self._issue = issue
        super().__init__(self._answer)

    @property
    def full_uri(self) -> str:
        return f"{self.url}{PATH}"

    def _answer(self, request: Request) -> Reply:
        if request.method != "GET" or request.path != PATH:
            return Reply(404)
        if request.headers.get("authorization") != self.authorization:
            return Reply(401, json.dumps({"Code": "AccessDeniedException", "Message": "bad token"}).encode())
        credentials, expiration = self._issue()
        self.issued.append((credentials, expiration))
        return Reply(200, json.dumps({
            "AccessKeyId": credentials.access_key_id,
            "SecretAccessKey": credentials.secret_access_key,
            "Token": credentials.session_token,
            "Expiration": iso(expiration),
            "RoleArn": "arn:aws:iam::123456789012:role/relay-role",
        }).encode())
