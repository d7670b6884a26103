"""A relay configured only by a full cfg.yaml in the original daemon's format (no flags but -c)."""

from support.python_sdk import emit_segments, make_recorder
from support.xray import delivery_problems, wait_for_segments


def test_everything_from_the_config_file(start_relay, xray):
    relay = start_relay(config_only=True)
    recorder, emitter = make_recorder(relay.udp_port, relay.tcp_port)
    emit_segments(recorder, 10, tag="cfg-only")
    sent = emitter.documents()
    problems = delivery_problems(sent, wait_for_segments(xray, sent, timeout=30))
    assert not problems, f"{problems}\n{relay.report()}"
    assert relay.log_path.exists(), f"Logging.LogPath {relay.log_path} was not written\n{relay.report()}"
