"""-p socks5://user:password@host:port: the relay's uploads and the TCP proxy's signed forwards go
through a SOCKS5 proxy, as the original daemon's Go transport sends them. The proxy is pproxy, a
third-party server that checks the password; it logs each connection's target, which shows the
relay hands it the endpoint's host name to resolve (Go does, for socks5 and socks5h alike)."""

import subprocess
import sys
import time

import pytest

from support.net import free_port, wait_tcp_accepting
from support.segments import Sender, datagram, make_segment
from support.xray import forward_through_proxy, upload, wait_for_segments

USER, PASSWORD = "relay", "s3cret"


class SocksProxy:
    """pproxy serving SOCKS5 on a local port, requiring USER:PASSWORD on every connection."""

    def __init__(self, log_path):
        self.port = free_port()
        self.log_path = log_path
        self._log = open(log_path, "wb")
        # --auth 0: every connection authenticates (by default pproxy trusts an address for 30
        # days once it has).
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pproxy", "-l", f"socks5://127.0.0.1:{self.port}#{USER}:{PASSWORD}",
             "--auth", "0", "-v"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_tcp_accepting(self.port, timeout=20)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture
def socks(tmp_path):
    proxy = SocksProxy(tmp_path / "pproxy.log")
    yield proxy
    proxy.stop()


def test_uploads_and_proxied_calls_go_through_a_socks5_proxy_with_its_password(start_relay, moto, xray, socks):
    moto_port = moto.url.rsplit(":", 1)[1]
    # A host name, so the proxy's log shows whether the relay resolved it or handed it over.
    endpoint = f"http://localhost:{moto_port}"
    relay = start_relay(endpoint=endpoint,
                        args=("-p", f"socks5://{USER}:{PASSWORD}@127.0.0.1:{socks.port}"))
    upload(relay, xray, "socks", count=20)
    # The TCP proxy signs an SDK's call and forwards it through the same SOCKS proxy.
    forward_through_proxy(relay, xray, "socks-forwarded")

    log = socks.log()
    assert f"-> localhost:{moto_port}" in log, f"no connection to the endpoint by name:\n{log}"
    assert "Unauthorized" not in log, log


def test_a_wrong_socks_password_delivers_nothing_and_says_why(start_relay, moto, xray, socks):
    relay = start_relay(args=("-p", f"socks5://{USER}:wrong@127.0.0.1:{socks.port}"))
    segment = make_segment("socks-refused")
    sender = Sender(relay.udp_port)
    sender.send(datagram(segment))
    sender.close()
    deadline = time.monotonic() + 20
    while "Unauthorized" not in socks.log() or "Sending segment batch failed" not in relay.log_path.read_text():
        assert time.monotonic() < deadline, f"no refused try through the proxy\n{relay.report()}\n{socks.log()}"
        time.sleep(0.1)
    assert wait_for_segments(xray, [segment], timeout=2) == {}
    assert relay.running, relay.report()
