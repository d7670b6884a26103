"""A mock X-Ray endpoint for centralized sampling that checks every request's SigV4 signature
with botocore's own signer (an implementation independent of the relay's), and serves rules."""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from support.moto import REGION, Credentials
from support.net import HOST


def rule(name: str, priority: int, rate: float, reservoir: int, service: str = "*") -> dict:
    """A SamplingRuleRecord as GetSamplingRules returns it."""
    return {
        "SamplingRule": {
            "RuleName": name,
            "RuleARN": f"arn:aws:xray:{REGION}:123456789012:sampling-rule/{name}",
            "ResourceARN": "*",
            "Priority": priority,
            "FixedRate": rate,
            "ReservoirSize": reservoir,
            "ServiceName": service,
            "ServiceType": "*",
            "Host": "*",
            "HTTPMethod": "*",
            "URLPath": "*",
            "Version": 1,
            "Attributes": {},
        },
        "CreatedAt": 1600000000.0,
        "ModifiedAt": 1600000000.0,
    }


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    signature_problem: str | None


def signature_problem(method: str, path: str, headers: dict[str, str], body: bytes,
                      credentials: Credentials) -> str | None:
    """None when the Authorization header is botocore's signature over what arrived."""
    authorization = headers.get("authorization")
    if not authorization or not authorization.startswith("AWS4-HMAC-SHA256 "):
        return f"not SigV4-signed: {authorization!r}"
    parts = dict(part.strip().split("=", 1) for part in authorization[len("AWS4-HMAC-SHA256 "):].split(","))
    access_key, date, region, service, terminator = parts["Credential"].split("/")
    if (access_key, region, service, terminator) != (credentials.access_key_id, REGION, "xray", "aws4_request"):
        return f"wrong credential scope {parts['Credential']}"
    signed = parts["SignedHeaders"].split(";")
    for required in ("host", "x-amz-date", "content-type"):
        if required not in signed:
            return f"{required} is not signed: {signed}"
    missing = [name for name in signed if name not in headers]
    if missing:
        return f"signed headers missing from the request: {missing}"
    request = AWSRequest(method=method, url=f"http://{headers['host']}{path}", data=body,
                         headers={name: headers[name] for name in signed})
    amz_date = headers["x-amz-date"]
    if not amz_date.startswith(date):
        return f"x-amz-date {amz_date} is not of the scope's day {date}"
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(BotoCredentials(credentials.access_key_id, credentials.secret_access_key,
                                       credentials.session_token), "xray", REGION)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if parts["Signature"] != expected:
        return f"signature {parts['Signature']} != botocore's {expected}\ncanonical request:\n{canonical}"
    return None


@dataclass
class SamplingEndpoint:
    """The mock, serving `rules` and accepting trace segments, on a free loopback port."""

    credentials: Credentials
    rules: list[dict]
    received: list[Received] = field(default_factory=list)

    def __post_init__(self):
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                problem = signature_problem("POST", self.path, headers, body, endpoint.credentials)
                endpoint.received.append(Received("POST", self.path, headers, body, problem))
                if problem:
                    self.answer(403, {"__type": "InvalidSignatureException", "message": problem})
                elif self.path == "/GetSamplingRules":
                    self.answer(200, {"SamplingRuleRecords": endpoint.rules})
                elif self.path == "/SamplingTargets":
                    self.answer(200, endpoint.targets(json.loads(body)))
                elif self.path == "/TraceSegments":
                    self.answer(200, {"UnprocessedTraceSegments": []})
                else:
                    self.answer(200, {})

            def answer(self, status: int, document: dict):
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def targets(self, request: dict) -> dict:
        """A target per reported rule: its own rate, no reservoir, valid for a minute."""
        by_name = {record["SamplingRule"]["RuleName"]: record["SamplingRule"] for record in self.rules}
        documents = [
            {"RuleName": stats["RuleName"], "FixedRate": by_name[stats["RuleName"]]["FixedRate"],
             "ReservoirQuota": 0, "ReservoirQuotaTTL": time.time() + 60, "Interval": 10}
            for stats in request["SamplingStatisticsDocuments"] if stats["RuleName"] in by_name
        ]
        return {"SamplingTargetDocuments": documents, "LastRuleModification": 1600000000.0,
                "UnprocessedStatistics": []}

    def calls(self, path: str) -> list[Received]:
        return [request for request in list(self.received) if request.path == path]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
