"""OTLP.Destination segments: spans from the Python and Node.js OpenTelemetry SDKs go through
the relay as X-Ray segment documents into moto (IAM enforced, so every PutTraceSegments is signed
and allowed), and read back with BatchGetTraces match what the SDK recorded: ids and parent links,
names, the http block, error/throttle/fault, the exception with its stack, annotations; the
trace summaries of GetTraceSummaries carry the error, throttle and fault flags.

Annotation search is not tested through GetTraceSummaries: moto 5.2.1 answers any
FilterExpression with InternalFailure "Not implemented yet - moto" and leaves every summary's
Annotations empty (moto/xray/models.py, SegmentCollection.summary), so the annotations are
compared in the documents BatchGetTraces returns."""

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from support.net import HOST, free_port
from support.xray import fetch_documents


def xray_trace_id(trace_id: int) -> str:
    text = f"{trace_id:032x}"
    return f"1-{text[:8]}-{text[8:]}"


def fail_checkout():
    raise ValueError("no stock for item 7")


def test_python_sdk_spans_become_segments_in_xray(start_relay, xray):
    port = free_port()
    relay = start_relay(args=("--otlp-address", f"{HOST}:{port}", "--otlp-destination", "segments"))
    provider = TracerProvider(resource=Resource.create({"service.name": "shop", "service.version": "2.1"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"http://{HOST}:{port}/v1/traces"),
                                                   schedule_delay_millis=100))
    tracer = provider.get_tracer("xray-relay-e2e")
    with tracer.start_as_current_span("GET /cart", kind=SpanKind.SERVER, attributes={
            "http.request.method": "GET", "url.scheme": "http", "server.address": "shop.local",
            "url.path": "/cart", "http.response.status_code": 500, "customer.tier": "gold",
            "aws.xray.annotations": ["customer.tier"], "cart.items": 3}) as server:
        with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT, attributes={
                "http.request.method": "GET", "url.full": "https://pay.example/charge",
                "server.address": "pay.example", "http.response.status_code": 429}) as client:
            pass
        try:
            fail_checkout()
        except ValueError as error:
            server.record_exception(error)
            server.set_status(Status(StatusCode.ERROR, "checkout failed"))
    assert provider.force_flush(30_000)
    provider.shutdown()

    trace_id = xray_trace_id(server.get_span_context().trace_id)
    server_id = f"{server.get_span_context().span_id:016x}"
    client_id = f"{client.get_span_context().span_id:016x}"
    deadline = time.monotonic() + 30
    found = {}
    while len(found) < 2 and time.monotonic() < deadline:
        found = fetch_documents(xray, [trace_id])
        time.sleep(0.25)
    assert set(found) == {server_id, client_id}, f"{found}\n{relay.report()}"

    segment = json.loads(found[server_id])
    assert segment["trace_id"] == trace_id
    assert segment["name"] == "shop"
    assert "parent_id" not in segment and "type" not in segment
    assert segment["http"] == {"request": {"method": "GET", "url": "http://shop.local/cart"},
                               "response": {"status": 500}}
    assert segment["fault"] is True and "error" not in segment
    assert segment["service"] == {"version": "2.1"}
    assert segment["annotations"] == {"customer_tier": "gold"}
    assert segment["metadata"]["default"]["cart.items"] == 3
    assert segment["metadata"]["default"]["otel.resource.service.name"] == "shop"
    # Epoch seconds with the microseconds (the nanoseconds cut off).
    assert segment["start_time"] == server.start_time // 1000 / 1e6
    assert segment["end_time"] == server.end_time // 1000 / 1e6
    exception = segment["cause"]["exceptions"][0]
    assert exception["type"] == "ValueError"
    assert exception["message"] == "no stock for item 7"
    # Python lists the innermost call last; X-Ray wants it first.
    assert exception["stack"][0]["label"] == "fail_checkout"
    assert exception["stack"][0]["path"] == __file__
    assert exception["stack"][1]["label"] == "test_python_sdk_spans_become_segments_in_xray"

    subsegment = json.loads(found[client_id])
    assert subsegment["type"] == "subsegment"
    assert subsegment["trace_id"] == trace_id
    assert subsegment["parent_id"] == server_id
    assert subsegment["name"] == "pay.example"
    assert subsegment["namespace"] == "remote"
    assert subsegment["error"] is True and subsegment["throttle"] is True
    assert subsegment["http"]["request"]["url"] == "https://pay.example/charge"
    assert "service" not in subsegment and "otel.resource.service.name" not in subsegment.get(
        "metadata", {}).get("default", {})


NODE_DIR = Path(__file__).parent / "node"
NODE_SCRIPT = NODE_DIR / "otlp_segments.js"
# @opentelemetry/api's SpanKind.
NODE_SERVER, NODE_CLIENT, NODE_INTERNAL = 1, 2, 0
# The server span's attributes that go into its http block rather than its metadata.
SERVER_HTTP_KEYS = {"http.request.method", "url.scheme", "server.address", "server.port", "url.path", "url.query",
                    "user_agent.original", "http.response.status_code"}
# Named in OTLP.IndexedAttributes (the cfg file); customer.tier is named by aws.xray.annotations.
INDEXED = ["order.id", "order.total", "order.gift", "otel.resource.deployment.environment.name"]
# "    at function (path:line:column)" or "    at path:line:column", as V8 writes its frames.
NODE_FRAME = re.compile(r"^\s+at (?:(?:async )?(?P<label>.+) \((?P<path>.+):(?P<line>\d+):\d+\)"
                        r"|(?P<bare>.+):(?P<bare_line>\d+):\d+)$")


def node_frames(stack: str) -> list[dict]:
    """X-Ray stack frames of a V8 stack trace, read independently of the relay's parser."""
    frames = []
    for line in stack.splitlines()[1:]:
        match = NODE_FRAME.match(line)
        assert match, f"not a V8 frame: {line!r}"
        if match["label"] is not None:
            frames.append({"path": match["path"], "line": int(match["line"]), "label": match["label"]})
        else:
            frames.append({"path": match["bare"], "line": int(match["bare_line"])})
    return frames


def seconds(ns: str) -> float:
    """Nanoseconds since the epoch as X-Ray's seconds with microseconds (the rest cut off)."""
    return int(ns) // 1000 / 1e6


@pytest.mark.parametrize("protocol", ["json", "proto"])
def test_node_sdk_spans_become_segments_in_xray(start_relay, moto, xray, tmp_path, protocol):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the Node.js SDK test needs node and `npm ci` in tests/e2e/node")
    if not (NODE_DIR / "node_modules" / "@opentelemetry" / "api").is_dir():
        pytest.fail(f"the OpenTelemetry packages are not installed: run `npm ci` in {NODE_DIR}")
    port = free_port()
    config = tmp_path / "otlp.yaml"
    config.write_text(f'Version: 2\nEndpoint: "{moto.url}"\nOTLP:\n  IndexedAttributes: {json.dumps(INDEXED)}\n')
    relay = start_relay(endpoint=None, args=("-c", str(config), "--otlp-address", f"{HOST}:{port}",
                                             "--otlp-destination", "segments"))
    run = subprocess.run([node, NODE_SCRIPT.name, f"http://{HOST}:{port}/v1/traces", protocol], cwd=NODE_DIR,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"{NODE_SCRIPT.name} failed ({run.returncode}):\n{run.stderr[-3000:]}\n{relay.report()}"
    recorded = {span["name"]: span for span in map(json.loads, run.stdout.splitlines())}
    server, client = recorded["GET /orders/:id"], recorded["POST"]
    internal, health = recorded["reserve stock (item #7)"], recorded["GET /health"]
    assert (server["kind"], client["kind"], internal["kind"]) == (NODE_SERVER, NODE_CLIENT, NODE_INTERNAL)
    assert server["parentSpanId"] is None and health["parentSpanId"] is None
    assert client["parentSpanId"] == internal["parentSpanId"] == server["spanId"]

    def trace_id(span):
        return f"1-{span['traceId'][:8]}-{span['traceId'][8:]}"

    deadline = time.monotonic() + 30
    found = {}
    while len(found) < 4 and time.monotonic() < deadline:
        found = fetch_documents(xray, {trace_id(server), trace_id(health)})
        time.sleep(0.25)
    assert set(found) == {s["spanId"] for s in recorded.values()}, f"{found}\n{relay.report()}"
    documents = {name: json.loads(found[span["spanId"]]) for name, span in recorded.items()}

    for name, span in recorded.items():
        document = documents[name]
        assert document["id"] == span["spanId"]
        assert document["trace_id"] == trace_id(span)
        assert document["start_time"] == seconds(span["startNs"])
        assert document["end_time"] == seconds(span["endNs"])
        assert "in_progress" not in document

    segment = documents["GET /orders/:id"]
    attributes, resource = server["attributes"], server["resource"]
    assert segment["name"] == resource["service.name"] == f"checkout-node-{protocol}"
    assert "parent_id" not in segment and "type" not in segment and "namespace" not in segment
    assert segment["http"] == {
        "request": {"method": attributes["http.request.method"],
                    "url": f"{attributes['url.scheme']}://{attributes['server.address']}:{attributes['server.port']}"
                           f"{attributes['url.path']}?{attributes['url.query']}",
                    "user_agent": attributes["user_agent.original"]},
        "response": {"status": attributes["http.response.status_code"]}}
    assert attributes["http.response.status_code"] == 500
    assert segment["fault"] is True and "error" not in segment and "throttle" not in segment
    assert "cause" not in segment
    assert segment["service"] == {"version": resource["service.version"]}
    annotated = {"customer.tier"} | set(INDEXED)
    assert segment["annotations"] == {
        "customer_tier": "gold", "order_id": "o-7", "order_total": 12.5, "order_gift": True,
        "otel_resource_deployment_environment_name": "e2e"}
    expected_metadata = {key: value for key, value in attributes.items()
                         if key not in SERVER_HTTP_KEYS | annotated | {"aws.xray.annotations"}}
    expected_metadata |= {f"otel.resource.{key}": value for key, value in resource.items()
                          if f"otel.resource.{key}" not in annotated}
    assert segment["metadata"] == {"default": expected_metadata}
    assert expected_metadata["cart.skus"] == ["a-1", "b-2"] and expected_metadata["http.route"] == "/orders/:id"

    subsegment = documents["POST"]
    attributes = client["attributes"]
    assert subsegment["type"] == "subsegment"
    assert subsegment["parent_id"] == server["spanId"]
    assert subsegment["name"] == attributes["server.address"]
    assert subsegment["namespace"] == "remote"
    assert subsegment["http"] == {"request": {"method": "POST", "url": attributes["url.full"]},
                                  "response": {"status": 429}}
    assert subsegment["error"] is True and subsegment["throttle"] is True and "fault" not in subsegment
    # The name is read from server.address without taking it out of the metadata.
    assert subsegment["metadata"] == {"default": {"server.address": attributes["server.address"]}}
    for absent in ("annotations", "service", "origin", "cause"):
        assert absent not in subsegment, absent

    subsegment = documents["reserve stock (item #7)"]
    assert subsegment["type"] == "subsegment"
    assert subsegment["parent_id"] == server["spanId"]
    assert subsegment["name"] == "reserve stock item #7"  # X-Ray takes no parentheses in names
    assert "namespace" not in subsegment and "http" not in subsegment
    assert internal["status"]["code"] == 2  # ERROR, without an HTTP status: a fault
    assert subsegment["fault"] is True and "error" not in subsegment and "throttle" not in subsegment
    assert subsegment["metadata"] == {"default": {"stock.item": 7}}
    [event] = internal["events"]
    assert event["name"] == "exception"
    stack = event["attributes"]["exception.stacktrace"]
    [exception] = subsegment["cause"]["exceptions"]
    assert re.fullmatch(r"[0-9a-f]{16}", exception.pop("id"))
    assert exception == {"type": event["attributes"]["exception.type"],
                         "message": event["attributes"]["exception.message"], "stack": node_frames(stack)}
    assert (exception["type"], exception["message"]) == ("StockError", "no stock for item 7")
    # The innermost call first, as V8 writes it and X-Ray wants it.
    assert exception["stack"][0]["label"] == "reserveStock"
    assert exception["stack"][0]["path"] == str(NODE_SCRIPT)
    assert len(exception["stack"]) >= 3

    fine = documents["GET /health"]
    assert fine["name"] == f"checkout-node-{protocol}" and "parent_id" not in fine
    assert fine["http"] == {"request": {"method": "GET", "url": "http://shop.local/health"},
                            "response": {"status": 200}}
    for absent in ("error", "throttle", "fault", "cause"):
        assert absent not in fine, absent

    now = int(time.time())
    summaries = xray.get_trace_summaries(StartTime=now - 3600, EndTime=now + 3600)["TraceSummaries"]
    flags = {s["Id"]: (s["HasError"], s["HasThrottle"], s["HasFault"]) for s in summaries}
    assert flags[trace_id(server)] == (True, True, True)
    assert flags[trace_id(health)] == (False, False, False)
