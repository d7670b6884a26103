"""A stand-in for X-Ray's OTLP endpoint (POST /v1/traces): checks every request's SigV4
signature with botocore (support.sampling.signature_problem, independent of the relay's
signer), decodes bodies with the opentelemetry-proto package, and answers as scripted."""

import gzip
import json
import threading
import time
from dataclasses import dataclass, field

from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from support.moto import Credentials
from support.sampling import signature_problem
from support.stub_http import Reply, StubServer


@dataclass
class Span:
    trace_id: str
    span_id: str
    name: str
    service: str
    attributes: dict


@dataclass
class OtlpXRay:
    """`script`: statuses answered to the first requests to /v1/traces, in order (e.g. [503, 429]);
    after that every request is accepted; until `down_until` (time.time()) every request is 503.
    `problems` collects anything wrong with a request.

    For OTLP.Destination auto: `refusal`, when set, is the message of the 400 every /v1/traces
    request gets (an account without Transaction Search); `segment_destination` is the
    (status, body) answered to GetTraceSegmentDestination (default 200 `{}`, which names no
    destination); documents of signed PutTraceSegments calls are kept in `segments`."""

    credentials: Credentials
    script: list[int] = field(default_factory=list)
    down_until: float = 0.0
    spans: list[Span] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    refusal: str | None = None
    segment_destination: tuple[int, bytes] = (200, b"{}")
    segments: list[dict] = field(default_factory=list)

    def __post_init__(self):
        self._lock = threading.Lock()
        self._server = StubServer(self._handle)
        self.url = self._server.url

    def _handle(self, request) -> Reply:
        if request.path == "/GetTraceSegmentDestination":
            status, body = self.segment_destination
            return Reply(status, body, {"Content-Type": "application/json"})
        if request.path == "/TraceSegments":
            problem = signature_problem(request.method, request.path, request.headers, request.body,
                                        self.credentials)
            with self._lock:
                if problem:
                    self.problems.append(f"PutTraceSegments: {problem}")
                    return Reply(403, problem.encode())
                self.segments.extend(json.loads(d) for d in json.loads(request.body)["TraceSegmentDocuments"])
        if request.path != "/v1/traces":
            return Reply(200, b"{}", {"Content-Type": "application/json"})
        problem = signature_problem(request.method, request.path, request.headers, request.body,
                                    self.credentials)
        if problem is None and request.headers.get("content-type") != "application/x-protobuf":
            problem = f"content type {request.headers.get('content-type')!r}"
        body = request.body
        if problem is None and request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        decoded = ExportTraceServiceRequest()
        if problem is None:
            try:
                decoded.ParseFromString(body)
            except Exception as error:  # a body the real endpoint could not read either
                problem = f"not an ExportTraceServiceRequest: {error!r}"
        with self._lock:
            if problem:
                self.problems.append(problem)
                self.statuses.append(403)
                return Reply(403, problem.encode())
            if self.refusal is not None:
                self.statuses.append(400)
                answer = status_pb2.Status(code=3, message=self.refusal).SerializeToString()
                return Reply(400, answer, {"Content-Type": "application/x-protobuf"})
            if time.time() < self.down_until:
                status = 503
            else:
                status = self.script.pop(0) if self.script else 200
            self.statuses.append(status)
            if status != 200:
                return Reply(status, b"", {"Content-Type": "application/x-protobuf"})
            for resource_spans in decoded.resource_spans:
                service = next((kv.value.string_value for kv in resource_spans.resource.attributes
                                if kv.key == "service.name"), "")
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        attributes = {kv.key: kv.value for kv in span.attributes}
                        self.spans.append(Span(span.trace_id.hex(), span.span_id.hex(), span.name, service,
                                               attributes))
        return Reply(200, ExportTraceServiceResponse().SerializeToString(),
                     {"Content-Type": "application/x-protobuf"})

    def received(self) -> list[Span]:
        with self._lock:
            return list(self.spans)

    def stop(self) -> None:
        self._server.stop()
