"""OpenTelemetry SDKs (Python: opentelemetry-exporter-otlp-proto-http; Node.js:
@opentelemetry/exporter-trace-otlp-http and -proto) send spans to the relay's OTLP receiver;
a stand-in for X-Ray's OTLP endpoint checks every signature with botocore and decodes every
body with opentelemetry-proto. No span may be lost through outages, throttling or a full buffer."""

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

from support.moto import Credentials
from support.net import HOST, free_port
from support.otlp_xray import OtlpXRay

NODE_DIR = Path(__file__).parent / "node"
KEYS = Credentials("AKIDOTLPTEST", "otlp/test/secret/key")


@pytest.fixture
def stand_in():
    server = OtlpXRay(KEYS)
    yield server
    server.stop()


@pytest.fixture
def otlp_relay(start_relay, stand_in):
    """A relay forwarding OTLP to the stand-in; returns (relay, OTLP URL)."""

    def start(*args: str):
        port = free_port()
        relay = start_relay(endpoint=stand_in.url, credentials=KEYS,
                            args=("--otlp-address", f"{HOST}:{port}") + args)
        return relay, f"http://{HOST}:{port}/v1/traces"

    return start


def send_python(url: str, count: int, tag: str, compression=Compression.NoCompression, pad: int = 0,
                batch: int = 128) -> list[tuple[str, str, str]]:
    """Sends `count` spans with the Python SDK; returns (trace id, span id, name) of each. Fails if
    the exporter reported anything but success."""
    exporter = OTLPSpanExporter(endpoint=url, compression=compression, timeout=60)
    results = []
    export = exporter.export
    exporter.export = lambda spans: results.append(export(spans)) or results[-1]
    provider = TracerProvider(resource=Resource.create({"service.name": f"python-otlp-{tag}"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=batch,
                                                   max_queue_size=max(2048, count), schedule_delay_millis=100))
    tracer = provider.get_tracer("xray-relay-e2e", "1.0")
    sent = []
    for i in range(count):
        with tracer.start_as_current_span(f"python-{tag}-{i}", attributes={
                "index": i, "tag": tag, "even": i % 2 == 0, "ratio": i / 3, "words": ["zwölf", "naïve", "✓"],
                "pad": "p" * pad}) as span:
            span.add_event("checkpoint", {"step": 1})
            context = span.get_span_context()
            sent.append((f"{context.trace_id:032x}", f"{context.span_id:016x}", f"python-{tag}-{i}"))
    assert provider.force_flush(120_000), "the SDK could not flush"
    provider.shutdown()
    assert results and all(r == SpanExportResult.SUCCESS for r in results), results
    return sent


def wait_for_spans(stand_in: OtlpXRay, sent, timeout: float = 30.0):
    """Waits until every sent span arrived; returns what arrived, keyed by span id."""
    wanted = {span_id for _, span_id, _ in sent}
    deadline = time.time() + timeout
    while True:
        arrived = {span.span_id: span for span in stand_in.received()}
        if wanted <= arrived.keys() or time.time() > deadline:
            return arrived
        time.sleep(0.1)


def assert_all_arrived(stand_in: OtlpXRay, sent, relay, timeout: float = 30.0):
    arrived = wait_for_spans(stand_in, sent, timeout)
    assert not stand_in.problems, stand_in.problems
    missing = [name for _, span_id, name in sent if span_id not in arrived]
    assert not missing, f"{len(missing)} spans never reached X-Ray: {missing[:5]}\n{relay.report()}"
    for trace_id, span_id, name in sent:
        span = arrived[span_id]
        assert (span.trace_id, span.name) == (trace_id, name)
    ids = [span.span_id for span in stand_in.received()]
    assert len(ids) == len(set(ids)), "a span arrived twice"
    return arrived


def relay_metrics(relay) -> str:
    with urllib.request.urlopen(f"http://{HOST}:{relay.tcp_port}/metrics", timeout=10) as answer:
        return answer.read().decode()


@pytest.mark.parametrize("compression", [Compression.Gzip, Compression.NoCompression], ids=["gzip", "identity"])
def test_python_sdk_spans_arrive_signed_with_their_content(otlp_relay, stand_in, compression):
    relay, url = otlp_relay()
    sent = send_python(url, 300, "content", compression)
    arrived = assert_all_arrived(stand_in, sent, relay)
    span = arrived[sent[7][1]]
    assert span.service == "python-otlp-content"
    assert span.attributes["index"].int_value == 7
    assert span.attributes["ratio"].double_value == pytest.approx(7 / 3)
    assert [v.string_value for v in span.attributes["words"].array_value.values] == ["zwölf", "naïve", "✓"]


@pytest.mark.parametrize("protocol", ["json", "proto"])
def test_node_sdk_spans_arrive(otlp_relay, stand_in, protocol):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the Node.js SDK test needs node and `npm ci` in tests/e2e/node")
    if not (NODE_DIR / "node_modules" / "@opentelemetry" / "exporter-trace-otlp-proto").is_dir():
        pytest.fail(f"the OpenTelemetry packages are not installed: run `npm ci` in {NODE_DIR}")
    relay, url = otlp_relay()
    run = subprocess.run([node, "otlp.js", url, "150", protocol, protocol], cwd=NODE_DIR, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, f"otlp.js failed ({run.returncode}):\n{run.stderr[-3000:]}\n{relay.report()}"
    sent = [(s["traceId"], s["spanId"], s["name"]) for s in map(json.loads, run.stdout.splitlines())]
    assert len(sent) == 150
    arrived = assert_all_arrived(stand_in, sent, relay)
    span = arrived[sent[3][1]]
    assert span.service == f"node-otlp-{protocol}"
    assert span.attributes["index"].int_value == 3


def test_outage_and_throttling_lose_no_span(otlp_relay, stand_in):
    stand_in.script.extend([503, 500, 429, 503])
    relay, url = otlp_relay()
    sent = send_python(url, 400, "outage", Compression.Gzip)
    assert_all_arrived(stand_in, sent, relay, timeout=60)
    assert stand_in.statuses[:4] == [503, 500, 429, 503]
    metrics = relay_metrics(relay)
    assert "xray_relay_otlp_spans_retried_total 0\n" not in metrics


def test_a_full_buffer_answers_503_and_the_sdk_retries_until_every_span_arrives(otlp_relay, stand_in):
    # X-Ray is down for a while; the relay's OTLP buffer (8 MiB with -m 16) fills with two
    # requests of about 3.4 MB, so the SDK's third is answered 503 and retried.
    stand_in.down_until = time.time() + 6
    relay, url = otlp_relay("-m", "16")
    sent = send_python(url, 1200, "full", Compression.NoCompression, pad=8000, batch=400)
    assert_all_arrived(stand_in, sent, relay, timeout=60)
    metrics = relay_metrics(relay)
    assert 'xray_relay_otlp_requests_total{status="503"}' in metrics, metrics


def test_bad_input_is_refused_and_the_relay_goes_on(otlp_relay, stand_in):
    relay, url = otlp_relay()

    def post(body: bytes, content_type: str, encoding: str | None = None) -> int:
        request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
        if encoding:
            request.add_header("Content-Encoding", encoding)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status
        except urllib.error.HTTPError as error:
            return error.code

    import gzip as gz
    assert post(b"\x0a\xff\xff\xff\x0f", "application/x-protobuf") == 400
    assert post(b'{"resourceSpans": [{"scopeSpans": 5}]}', "application/json") == 400
    assert post(b"{}", "text/plain") == 415
    assert post(gz.compress(b"\0" * 20_000_000), "application/x-protobuf", "gzip") == 413
    # An oversized body is refused from its Content-Length, before it is sent.
    with socket.create_connection((HOST, int(url.split(":")[2].split("/")[0])), timeout=10) as raw:
        raw.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                    b"Content-Length: 5000000\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 413 ")
    sent = send_python(url, 20, "after-bad-input")
    assert_all_arrived(stand_in, sent, relay)
