"""Credentials the relay takes from its environment: temporary ones with a session token, and wrong ones."""

from support.moto import Credentials
from support.net import wait_udp_drained
from support.segments import Sender, datagram, make_segment
from support.xray import delivery_problems, fetch_documents, wait_for_segments


def send(relay, segments):
    sender = Sender(relay.udp_port)
    for segment in segments:
        sender.send(datagram(segment))
    sender.close()


def test_session_token_credentials_upload(start_relay, moto, xray):
    relay = start_relay(credentials=moto.assume_role_credentials())
    segments = [make_segment("session-token") for _ in range(5)]
    send(relay, segments)
    problems = delivery_problems(segments, wait_for_segments(xray, segments, timeout=30))
    assert not problems, f"{problems}\n{relay.report()}"


def test_rejected_credentials_store_nothing_and_do_not_crash(start_relay, moto, xray):
    wrong = Credentials(moto.relay_credentials.access_key_id, "not-the-secret-key-at-all-0123456789abcd")
    relay = start_relay(credentials=wrong)
    segments = [make_segment("wrong-secret") for _ in range(5)]
    send(relay, segments)
    wait_udp_drained(relay.udp_port)
    code = relay.stop()  # flushes: the upload is attempted and refused before the exit
    assert code == 0, f"relay exited with {code}\n{relay.report()}"
    assert fetch_documents(xray, [segment["trace_id"] for segment in segments]) == {}
