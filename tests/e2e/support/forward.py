"""Forwarders in front of moto.

SigningRecorder passes every request to moto unchanged (same Host header, so SigV4 still
matches) and records which access key signed it, whether it carried a session token, and when.

WebIdentityStsForwarder stands in for STS: moto cannot serve the unsigned AssumeRoleWithWebIdentity
call while it enforces IAM (it needs an Authorization header on every request), so this checks that
the relay's request is unsigned and carries the expected token, signs the exact same body as the
"assumer" user, and returns moto's answer unchanged."""

import http.client
import re
import urllib.parse

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from support.moto import REGION
from support.net import HOST
from support.stub_http import Reply, Request, StubServer

CREDENTIAL = re.compile(r"Credential=([^/]+)/")


def _send(port: int, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection"):
                connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        content_type = response.getheader("Content-Type", "application/json")
        return Reply(response.status, response.read(), {"Content-Type": content_type})
    finally:
        connection.close()


class SigningRecorder(StubServer):
    """An X-Ray (or STS) endpoint for the relay that forwards to moto and records the signers and
    moto's replies."""

    def __init__(self, moto_port: int):
        self.moto_port = moto_port
        self.replies: list[Reply] = []
        super().__init__(self._forward)

    def _forward(self, request: Request) -> Reply:
        reply = _send(self.moto_port, request.method, request.path, request.headers, request.body)
        self.replies.append(reply)
        return reply

    def signers(self, path: str = "/TraceSegments") -> list[tuple[str, bool, float]]:
        """(access key id, has a session token, arrival time) of each request to `path`."""
        found = []
        for request in self.seen():
            if request.path != path:
                continue
            match = CREDENTIAL.search(request.headers.get("authorization", ""))
            found.append((match.group(1) if match else "unsigned", "x-amz-security-token" in request.headers,
                          request.time))
        return found


class WebIdentityStsForwarder(StubServer):
    def __init__(self, moto_port: int, signer, expected_token: str):
        self.expected_token = expected_token
        self.problems: list[str] = []
        self._moto_port = moto_port
        self._signer = signer
        super().__init__(self._answer)

    def _answer(self, request: Request) -> Reply:
        form = urllib.parse.parse_qs(request.body.decode())
        if "authorization" in request.headers:
            self.problems.append("AssumeRoleWithWebIdentity request was signed")
        if form.get("Action") != ["AssumeRoleWithWebIdentity"]:
            self.problems.append(f"unexpected action {form.get('Action')}")
        if form.get("WebIdentityToken") != [self.expected_token]:
            self.problems.append("the web identity token is not the file's")
        headers = {"Content-Type": request.headers.get("content-type", "application/x-www-form-urlencoded")}
        url = f"http://{HOST}:{self._moto_port}/"
        aws_request = AWSRequest(method="POST", url=url, data=request.body, headers=headers)
        creds = self._signer
        SigV4Auth(BotoCredentials(creds.access_key_id, creds.secret_access_key), "sts", REGION).add_auth(aws_request)
        signed = dict(aws_request.headers.items())
        signed["Host"] = f"{HOST}:{self._moto_port}"
        return _send(self._moto_port, "POST", "/", signed, request.body)
