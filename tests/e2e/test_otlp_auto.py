"""OTLP.Destination auto (the default) for an account without Transaction Search: the relay may
not call GetTraceSegmentDestination (AccessDenied, as with the daemon's usual IAM policy), so it
starts on X-Ray's OTLP endpoint; the stand-in answers the Transaction Search 400, and the relay
switches to segments, re-sending the refused spans as PutTraceSegments documents: every span the
Python SDK recorded arrives once, signed (checked with botocore)."""

import time
import urllib.request

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

from support.net import HOST, free_port
from support.otlp_xray import OtlpXRay
from test_otlp import KEYS

REFUSAL = "The OTLP API is supported with CloudWatch Logs as a Trace Segment Destination."
DENIED = (b'{"__type":"AccessDeniedException","message":"User: arn:aws:iam::123456789012:user/relay '
          b'is not authorized to perform: xray:GetTraceSegmentDestination"}')


def test_the_transaction_search_400_switches_to_segments_and_no_span_is_lost(start_relay):
    stand_in = OtlpXRay(KEYS, refusal=REFUSAL, segment_destination=(403, DENIED))
    try:
        port = free_port()
        relay = start_relay(endpoint=stand_in.url, credentials=KEYS, args=("--otlp-address", f"{HOST}:{port}"))
        exporter = OTLPSpanExporter(endpoint=f"http://{HOST}:{port}/v1/traces", timeout=30)
        results = []
        export = exporter.export
        exporter.export = lambda spans: results.append(export(spans)) or results[-1]
        provider = TracerProvider(resource=Resource.create({"service.name": "auto-shop"}))
        provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=50, schedule_delay_millis=50))
        tracer = provider.get_tracer("xray-relay-e2e")
        sent = {}
        for i in range(200):
            with tracer.start_as_current_span(f"job-{i}") as span:
                context = span.get_span_context()
                sent[f"{context.span_id:016x}"] = (f"{context.trace_id:032x}", f"job-{i}")
        assert provider.force_flush(30_000)
        provider.shutdown()
        assert results and all(r == SpanExportResult.SUCCESS for r in results), results

        deadline = time.monotonic() + 30
        while len(stand_in.segments) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not stand_in.problems, stand_in.problems
        ids = [document["id"] for document in stand_in.segments]
        assert sorted(ids) == sorted(sent), f"{len(ids)} of {len(sent)} spans arrived\n{relay.report()}"
        for document in stand_in.segments:
            trace_id, name = sent[document["id"]]
            assert document["trace_id"] == f"1-{trace_id[:8]}-{trace_id[8:]}"
            assert document["name"] == "auto-shop", document
        # The OTLP endpoint refused the first requests only; nothing reached it.
        assert 400 in stand_in.statuses and stand_in.received() == []
        choices = [line for line in relay.log().splitlines() if "[Info] OTLP.Destination auto" in line]
        assert len(choices) == 2, choices
        assert "GetTraceSegmentDestination failed" in choices[0] and "AccessDeniedException" in choices[0]
        assert REFUSAL in choices[1], choices
        with urllib.request.urlopen(f"http://{HOST}:{relay.tcp_port}/metrics", timeout=10) as answer:
            metrics = answer.read().decode()
        assert 'xray_relay_otlp_destination{destination="segments"} 1\n' in metrics
        assert "xray_relay_otlp_destination_switches_total 1\n" in metrics
        assert "xray_relay_otlp_spans_refused_total 0\n" in metrics
    finally:
        stand_in.stop()
