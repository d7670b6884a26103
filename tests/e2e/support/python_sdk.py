"""The real AWS X-Ray SDK for Python, with its UDP emitter wrapped to record what it sends."""

import json
import traceback

from aws_xray_sdk.core import AWSXRayRecorder
from aws_xray_sdk.core.emitters.udp_emitter import UDPEmitter


class RecordingEmitter(UDPEmitter):
    """The SDK's own UDP emitter; every datagram it sends is also kept in `sent`."""

    def __init__(self, daemon_address: str):
        super().__init__(daemon_address)
        self.sent: list[bytes] = []

    def _send_data(self, data):
        self.sent.append(data.encode("utf-8"))
        super()._send_data(data)

    def documents(self) -> list[dict]:
        """The segment documents sent, parsed (the part after the header line)."""
        docs = []
        for message in self.sent:
            header, _, body = message.partition(b"\n")
            assert json.loads(header) == {"format": "json", "version": 1}, message[:200]
            docs.append(json.loads(body))
        return docs


def make_recorder(udp_port: int, tcp_port: int, sampling: bool = False) -> tuple[AWSXRayRecorder, RecordingEmitter]:
    """A recorder as an application would configure one: daemon address, every request traced, or
    with `sampling` the SDK's centralized sampler, which polls its rules through the daemon's TCP address."""
    address = f"tcp:127.0.0.1:{tcp_port} udp:127.0.0.1:{udp_port}"
    emitter = RecordingEmitter(address)
    recorder = AWSXRayRecorder()
    recorder.configure(
        daemon_address=address,
        sampling=sampling,  # False: no sampling decision, every segment is sent
        context_missing="LOG_ERROR",
        emitter=emitter,
        service="xray-relay-e2e",
        streaming_threshold=1000,  # keep subsegments inside their segment's document
    )
    return recorder, emitter


def emit_segments(recorder: AWSXRayRecorder, count: int, tag: str) -> None:
    """`count` segments, each with annotations, metadata and three subsegments (one with an error)."""
    for index in range(count):
        segment = recorder.begin_segment(f"python-e2e-{tag}")
        segment.put_annotation("tag", tag)
        segment.put_annotation("index", index)
        segment.put_annotation("even", index % 2 == 0)
        segment.put_metadata("request", {"index": index, "words": ["zwölf", "naïve", "✓"], "ratio": index / 7}, "e2e")
        segment.put_http_meta("url", f"http://example.invalid/orders/{index}")
        segment.put_http_meta("method", "GET")
        segment.put_http_meta("status", 200)

        query = recorder.begin_subsegment("query", namespace="remote")
        query.put_annotation("table", "orders")
        query.put_metadata("sql", f"SELECT * FROM orders WHERE id = {index}")
        recorder.end_subsegment()

        render = recorder.begin_subsegment("render")
        render.put_metadata("template", {"name": "order.html", "nested": {"depth": [1, [2, [3]]]}})
        inner = recorder.begin_subsegment("format-prices")
        inner.put_annotation("currency", "EUR")
        recorder.end_subsegment()
        recorder.end_subsegment()

        failing = recorder.begin_subsegment("downstream")
        try:
            raise ValueError(f"downstream failed for {index}")
        except ValueError as error:
            failing.add_exception(error, traceback.extract_tb(error.__traceback__))
        recorder.end_subsegment()

        recorder.end_segment()
