"""The relay under test (`xray`) as a child process on free loopback ports."""

import os
import signal
import subprocess
import time
from pathlib import Path

from support.moto import REGION, Credentials
from support.net import HOST, free_port, tcp_listening, udp_bound

START_TIMEOUT = 30.0  # generous: the binary may run under qemu-user
STOP_TIMEOUT = 10.0


def _tail(path: Path, lines: int) -> str:
    if not path.exists():
        return f"({path.name} does not exist)"
    text = path.read_text(errors="replace").splitlines()
    shown = [line if len(line) <= 400 else f"{line[:400]}... ({len(line)} chars)" for line in text[-lines:]]
    return "\n".join(shown) if text else f"({path.name} is empty)"


class Relay:
    """One run of the relay.

    command: the binary, with its runner prefix if any (e.g. qemu-aarch64-static).
    endpoint: X-Ray endpoint written to a cfg.yaml passed with -c; None for no config file.
    credentials: put in the environment; None for none at all.
    args: extra flags after the standard ones.
    config_only: configure everything (ports, region, log) in a full cfg.yaml instead of flags.
    env: extra environment variables, set last (e.g. AWS_EC2_METADATA_DISABLED=false).
    local_mode: pass -o (no instance metadata for region and telemetry).
    region: passed with -n; None to let the relay find it.
    """

    def __init__(self, command: list[str], workdir: Path, endpoint: str | None,
                 credentials: Credentials | None, args: tuple[str, ...] = (), config_only: bool = False,
                 env: dict[str, str] | None = None, local_mode: bool = True, region: str | None = REGION):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.udp_port = free_port()
        self.tcp_port = free_port()
        self.log_path = workdir / "relay.log"
        self.stdout_path = workdir / "stdout"
        self.stderr_path = workdir / "stderr"
        if config_only:
            self.argv = list(command) + ["-c", str(self._write_full_config(endpoint))]
        else:
            self.argv = list(command) + (["-o"] if local_mode else []) + (["-n", region] if region else []) + [
                "-b", f"{HOST}:{self.udp_port}", "-t", f"{HOST}:{self.tcp_port}",
                "-l", "debug", "-f", str(self.log_path)]
            if endpoint is not None:
                config = workdir / "cfg.yaml"
                config.write_text(f'Version: 2\nEndpoint: "{endpoint}"\n')
                self.argv += ["-c", str(config)]
        self.argv += list(args)
        self.env = self._environment(credentials)
        self.env.update(env or {})
        self.returncode: int | None = None
        self.killed = False
        self._stdout = open(self.stdout_path, "wb")
        self._stderr = open(self.stderr_path, "wb")
        self.process = subprocess.Popen(self.argv, env=self.env, cwd=workdir, stdin=subprocess.DEVNULL,
                                        stdout=self._stdout, stderr=self._stderr)
        self._wait_listening()

    def _write_full_config(self, endpoint: str | None) -> Path:
        """A cfg.yaml with every key of the original daemon's documented one, setting what the flags would."""
        config = self.workdir / "cfg.yaml"
        config.write_text("\n".join([
            "# every setting from this file, no command-line flags",
            "TotalBufferSizeMB: 16",
            "Concurrency: 4",
            f'Endpoint: "{endpoint or ""}"',
            f'Region: "{REGION}"',
            "Socket:",
            f'  UDPAddress: "{HOST}:{self.udp_port}"',
            f'  TCPAddress: "{HOST}:{self.tcp_port}"',
            "Logging:",
            "  LogRotation: false",
            '  LogLevel: "debug"',
            f'  LogPath: "{self.log_path}"',
            "LocalMode: true",
            'ResourceARN: ""',
            'RoleARN: ""',
            "NoVerifySSL: false",
            'ProxyAddress: ""',
            "Version: 2",
            "",
        ]))
        return config

    def _environment(self, credentials: Credentials | None) -> dict[str, str]:
        """The caller's environment without any AWS settings, so only what the test gives is used."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        home = self.workdir / "home"
        home.mkdir(exist_ok=True)
        env["HOME"] = str(home)  # no ~/.aws of the developer's
        env["AWS_EC2_METADATA_DISABLED"] = "true"
        env["RUST_BACKTRACE"] = "1"
        if credentials is not None:
            env.update(credentials.env())
        return env

    def _wait_listening(self) -> None:
        """Until start-up is over, or the process dies: the UDP port bound, then the TCP proxy
        listening. The relay binds the proxy (and the OTLP port) last, after its credentials,
        region and buffers, so a test that starts talking once UDP is bound can find the OTLP
        port closed or the first credentials not fetched yet on a loaded machine."""
        self._wait_for(lambda: udp_bound(self.udp_port), f"listening on UDP {self.udp_port}")
        self.wait_proxy()

    def wait_proxy(self) -> None:
        """Until the TCP proxy listens, or the process dies."""
        self._wait_for(lambda: tcp_listening(self.tcp_port), f"TCP proxy listening on {self.tcp_port}")

    def _wait_for(self, ready, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            if self.process.poll() is not None:
                self.returncode = self.process.returncode
                raise AssertionError(f"relay exited with code {self.returncode} before {what}\n{self.report()}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"relay not {what} after {START_TIMEOUT} s\n{self.report()}")
            time.sleep(0.05)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int:
        """SIGTERM, then wait; returns the exit code. Fails if the relay does not stop in time."""
        if self.returncode is not None:
            return self.returncode
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"relay still running {STOP_TIMEOUT} s after SIGTERM; killed\n{self.report()}")
            self.stop_seconds = time.monotonic() - started
        self.returncode = self.process.returncode
        self._close_files()
        return self.returncode

    def kill(self) -> None:
        """SIGKILL, for a relay the harness has already reported as failed."""
        self.killed = True
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.returncode = self.process.returncode
        self._close_files()

    def _close_files(self) -> None:
        self._stdout.close()
        self._stderr.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def report(self, lines: int = 30) -> str:
        """The command line and the tails of the relay's log, stdout and stderr, for failure messages."""
        for handle in (self._stdout, self._stderr):
            if not handle.closed:
                handle.flush()
        return "\n".join([
            f"relay command: {' '.join(self.argv)}",
            f"--- relay log (-f), last {lines} lines ---", _tail(self.log_path, lines),
            f"--- relay stderr, last {lines} lines ---", _tail(self.stderr_path, lines),
            f"--- relay stdout, last {lines} lines ---", _tail(self.stdout_path, lines),
        ])
