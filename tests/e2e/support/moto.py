"""moto's server mode as the X-Ray API, with IAM authentication enforced.

moto 5.x checks SigV4 signatures and IAM policies once it has served
INITIAL_NO_AUTH_ACTION_COUNT requests (moto/core/authorization.py). The setup
calls below are exactly that many; every request after them must be signed by
a known access key whose policies allow the action. For X-Ray, moto names the
action after the URL path (xray:TraceSegments, xray:Traces, ...), so policies
here allow xray:* rather than the real API's action names.
"""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config

from support.net import HOST, free_port, wait_tcp_accepting

REGION = "us-east-1"
ACCOUNT = "123456789012"

XRAY_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "xray:*", "Resource": "*"},
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"},
    ],
}

# The "assumer" may only assume the role: segments signed with its own keys are refused, so
# a successful upload after it assumed the role proves the role's credentials were used.
ASSUMER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:AssumeRoleWithWebIdentity"], "Resource": "*"},
    ],
}


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def env(self) -> dict[str, str]:
        """The environment variables an AWS client reads these credentials from."""
        env = {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env


def _setup_calls(iam) -> dict:
    """The unauthenticated setup, one request per line; returns what the tests need."""
    iam.create_user(UserName="relay")
    relay_key = iam.create_access_key(UserName="relay")["AccessKey"]
    iam.put_user_policy(UserName="relay", PolicyName="xray", PolicyDocument=json.dumps(XRAY_POLICY))
    iam.create_user(UserName="no-xray")
    denied_key = iam.create_access_key(UserName="no-xray")["AccessKey"]
    iam.create_user(UserName="assumer")
    assumer_key = iam.create_access_key(UserName="assumer")["AccessKey"]
    iam.put_user_policy(UserName="assumer", PolicyName="assume", PolicyDocument=json.dumps(ASSUMER_POLICY))
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": [f"arn:aws:iam::{ACCOUNT}:user/relay", f"arn:aws:iam::{ACCOUNT}:user/assumer"]},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(RoleName="relay-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    iam.put_role_policy(RoleName="relay-role", PolicyName="xray", PolicyDocument=json.dumps(XRAY_POLICY))
    return {"relay_key": relay_key, "denied_key": denied_key, "assumer_key": assumer_key, "role_arn": role["Arn"]}


SETUP_CALL_COUNT = 10  # the number of requests _setup_calls makes


class MotoServer:
    """A moto server process on a free loopback port."""

    def __init__(self, log_path: Path):
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(SETUP_CALL_COUNT)
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_tcp_accepting(self.port, timeout=60)
        except AssertionError:
            self.stop()
            raise AssertionError(f"moto server did not start:\n{self.log_tail()}")
        setup = _setup_calls(self.client("iam", Credentials("setup", "setup")))
        key = setup["relay_key"]
        self.relay_credentials = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
        key = setup["denied_key"]
        self.denied_credentials = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
        key = setup["assumer_key"]
        self.assumer_credentials = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
        self.role_arn = setup["role_arn"]

    def client(self, service: str, credentials: Credentials, retries: int = 0):
        """A boto3 client for this server signed with the given credentials (no retries by default)."""
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
            config=Config(retries={"total_max_attempts": retries + 1, "mode": "standard"}),
        )

    def xray(self, credentials: Credentials | None = None):
        return self.client("xray", credentials or self.relay_credentials)

    def assume_role_credentials(self, session_name: str = "e2e") -> Credentials:
        """Temporary credentials (with a session token) for the role, obtained by the relay user."""
        sts = self.client("sts", self.relay_credentials)
        creds = sts.assume_role(RoleArn=self.role_arn, RoleSessionName=session_name)["Credentials"]
        return Credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])

    def log_tail(self, lines: int = 40) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
