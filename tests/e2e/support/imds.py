"""An EC2 instance metadata (IMDSv2) stand-in: a session token first, then metadata only with that token.

It hands out credentials from `issue()` (a function returning (Credentials, expiration datetime)) for
the instance role, and a region, host name and instance id."""

import datetime
import json
import secrets

from support.stub_http import Reply, Request, StubServer

ROLE = "relay-instance-role"
INSTANCE_ID = "i-0e2e0e2e0e2e0e2e0"
HOSTNAME = "ip-10-0-0-1.ec2.internal"


def iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ImdsStandIn(StubServer):
    """token_status: what `PUT /latest/api/token` answers; 200 issues a token, 403 makes clients use IMDSv1."""

    def __init__(self, issue, region: str, token_status: int = 200):
        self.token = f"imds-token-{secrets.token_hex(8)}"
        self.token_status = token_status
        self.issued = []  # (Credentials, expiration) in order
        self._issue = issue
        self._region = region
        super().__init__(self._answer)

    def _answer(self, request: Request) -> Reply:
        if request.method == "PUT" and request.path == "/latest/api/token":
            if self.token_status != 200:
                return Reply(self.token_status)
            if "x-aws-ec2-metadata-token-ttl-seconds" not in request.headers:
                return Reply(400, b"missing TTL header")
            return Reply(200, self.token.encode())
        if request.method != "GET":
            return Reply(405)
        if self.token_status == 200 and request.headers.get("x-aws-ec2-metadata-token") != self.token:
            return Reply(401)
        paths = {
            "/latest/meta-data/placement/region": lambda: self._region,
            "/latest/meta-data/hostname": lambda: HOSTNAME,
            "/latest/meta-data/instance-id": lambda: INSTANCE_ID,
            "/latest/meta-data/iam/security-credentials/": lambda: ROLE,
            f"/latest/meta-data/iam/security-credentials/{ROLE}": self._credentials,
        }
        answer = paths.get(request.path)
        return Reply(200, answer().encode()) if answer else Reply(404)

    def _credentials(self) -> str:
        credentials, expiration = self._issue()
        self.issued.append((credentials, expiration))
        return json.dumps({
            "Code": "Success",
            "LastUpdated": iso(datetime.datetime.now(datetime.timezone.utc)),
            "Type": "AWS-HMAC",
            "AccessKeyId": credentials.access_key_id,
            "SecretAccessKey": credentials.secret_access_key,
            "Token": credentials.session_token,
            "Expiration": iso(expiration),
        })
