"""OTLP.Destination segments: spans from the Python OpenTelemetry SDK go through the relay as
X-Ray segment documents into moto (IAM enforced, so every PutTraceSegments is signed and
allowed), and read back with BatchGetTraces match what the SDK recorded: ids and parent links,
names, the http block, error/throttle/fault, the exception with its stack, annotations."""

import json
import time

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
