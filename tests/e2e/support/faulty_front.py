"""A fault-injecting HTTP front for moto: the relay uploads here, and the test decides what happens.

Modes (set with `front.mode = ...` while the relay runs):
  pass        forward to moto unchanged (the relay's signature still holds: same Host, same body)
  refuse      stop listening, so connections are refused
  503         answer 503 ServiceUnavailableException
  429         answer 429 ThrottledException
  throttling  answer 400 ThrottlingException (the other spelling X-Ray uses)
  slow        wait `delay` seconds, then forward
  partial     store some documents, report the others as UnprocessedTraceSegments: ids for which
              `transient(id)` is true get ThrottledException (the relay must resend them), ids for
              which `permanent(id)` is true get InvalidSegmentException (the relay must log them)

Every document that reaches moto through the front is counted by segment id, so a test can
report duplicates (a retry of a batch whose answer was lost). Every PutTraceSegments call that
reaches the front, in any mode, is recorded in `signed` with the access key that signed it, so a
test can check which credentials the relay used during and after an outage.
"""

import collections
import json
import re
import socket
import threading
import time
import typing
import urllib.request

import botocore.auth
import botocore.awsrequest
import botocore.credentials

from support.moto import REGION, Credentials
from support.net import HOST, free_port

PASS_THROUGH_HEADERS = ("content-type", "x-amzn-xray-timestamp")
CREDENTIAL = re.compile(r"Credential=([^/]+)/")


class Signed(typing.NamedTuple):
    """One PutTraceSegments call as the front saw it."""
    access_key_id: str  # "unsigned" without an Authorization header
    arrived: float  # time.time() when the request was read
    mode: str  # the front's mode when it answered
    status: int  # the status the front answered with


class FaultyFront:
    def __init__(self, moto_url: str, credentials: Credentials):
        self.moto_url = moto_url
        self.credentials = credentials
        # While the front refuses, its port is free: a port from the ephemeral range could be
        # handed to the relay's own connect() (TCP simultaneous open to itself), and a port
        # picked twice could go to a relay. free_port's are below that range and never repeat.
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.mode = "pass"
        self.delay = 2.0
        self.transient = lambda segment_id: False
        self.permanent = lambda segment_id: False
        self.forwarded = collections.Counter()  # segment id -> times it reached moto
        self.answers = collections.Counter()  # (mode, status) -> count
        self.signed: list[Signed] = []  # every PutTraceSegments call, in arrival order
        self._lock = threading.Lock()
        self._listener = None
        self._stopped = False
        self._already_transient = set()
        self._connections = set()
        self._listen()

    # ---- listening ----

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed: refusing, or stopped
            with self._lock:
                self._connections.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def set_mode(self, mode: str) -> None:
        """Switch modes; 'refuse' closes the listener, leaving it reopens it."""
        with self._lock:
            if mode == "refuse" and self._listener is not None:
                self._close_listener()
                self._drop_connections()
            elif mode != "refuse" and self._listener is None and not self._stopped:
                self._listen()
            self.mode = mode

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self._listener is not None:
                self._close_listener()
            self._drop_connections()

    def _close_listener(self) -> None:
        """close() alone leaves a thread blocked in accept() and the port listening on Linux;
        shutdown() stops the listening and wakes that thread."""
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        self._listener = None

    def _drop_connections(self) -> None:
        """Kept-alive connections would carry on through a closed listener: cut them too."""
        for conn in list(self._connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._connections.clear()

    # ---- one connection, keep-alive ----

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while True:
                request_line = reader.readline()
                if not request_line:
                    return
                method, path, _ = request_line.decode("latin-1").split(" ", 2)
                headers = []
                while True:
                    line = reader.readline().decode("latin-1")
                    if line in ("\r\n", "\n", ""):
                        break
                    name, value = line.split(":", 1)
                    headers.append((name.strip(), value.strip()))
                length = int(next((v for n, v in headers if n.lower() == "content-length"), "0"))
                body = reader.read(length)
                status, reply = self._answer(method, path, headers, body)
                payload = reply.encode()
                conn.sendall(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload
                )
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._connections.discard(conn)
            conn.close()

    def _answer(self, method: str, path: str, headers, body: bytes) -> tuple[int, str]:
        arrived = time.time()
        mode = self.mode
        if path != "/TraceSegments":
            return self._forward(method, path, headers, body)
        authorization = next((v for n, v in headers if n.lower() == "authorization"), "")
        match = CREDENTIAL.search(authorization)
        if mode == "503":
            result = 503, json.dumps({"__type": "ServiceUnavailableException", "message": "injected outage"})
        elif mode == "429":
            result = 429, json.dumps({"__type": "ThrottledException", "message": "injected throttling"})
        elif mode == "throttling":
            result = 400, json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"})
        elif mode == "slow":
            time.sleep(self.delay)
            result = self._forward_counted(method, path, headers, body)
        elif mode == "partial":
            result = self._partial(method, path, headers, body)
        else:
            result = self._forward_counted(method, path, headers, body)
        with self._lock:
            self.answers[(mode, result[0])] += 1
            self.signed.append(Signed(match.group(1) if match else "unsigned", arrived, mode, result[0]))
        return result

    def _forward_counted(self, method, path, headers, body) -> tuple[int, str]:
        status, reply = self._forward(method, path, headers, body)
        if status == 200:
            self._count(json.loads(body)["TraceSegmentDocuments"], json.loads(reply))
        return status, reply

    def _count(self, documents, reply) -> None:
        refused = {u.get("Id") for u in reply.get("UnprocessedTraceSegments", [])}
        with self._lock:
            for document in documents:
                segment_id = json.loads(document).get("id")
                if segment_id not in refused:
                    self.forwarded[segment_id] += 1

    def _forward(self, method, path, headers, body) -> tuple[int, str]:
        """Send to moto as received: same Host and body, so the relay's signature still holds."""
        request = urllib.request.Request(self.moto_url + path, data=body, method=method)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection"):
                request.add_header(name, value)
        return self._send(request)

    def _partial(self, method, path, headers, body) -> tuple[int, str]:
        """Store the documents that are neither transient (first time) nor permanent; re-sign."""
        documents = json.loads(body)["TraceSegmentDocuments"]
        keep, unprocessed = [], []
        for document in documents:
            segment_id = json.loads(document)["id"]
            if self.permanent(segment_id):
                unprocessed.append({"Id": segment_id, "ErrorCode": "InvalidSegmentException",
                                    "Message": "injected permanent refusal"})
            elif self.transient(segment_id) and segment_id not in self._already_transient:
                self._already_transient.add(segment_id)
                unprocessed.append({"Id": segment_id, "ErrorCode": "ThrottledException",
                                    "Message": "injected throttling"})
            else:
                keep.append(document)
        if keep:
            status, reply = self._signed_to_moto(path, {"TraceSegmentDocuments": keep})
            if status != 200:
                return status, reply
            self._count(keep, json.loads(reply))
        return 200, json.dumps({"UnprocessedTraceSegments": unprocessed})

    def _signed_to_moto(self, path: str, payload: dict) -> tuple[int, str]:
        """A changed body breaks the relay's signature: sign it again, as the relay's user."""
        data = json.dumps(payload).encode()
        aws_request = botocore.awsrequest.AWSRequest(
            method="POST", url=self.moto_url + path, data=data, headers={"Content-Type": "application/json"}
        )
        creds = botocore.credentials.Credentials(self.credentials.access_key_id,
                                                 self.credentials.secret_access_key,
                                                 self.credentials.session_token)
        botocore.auth.SigV4Auth(creds, "xray", REGION).add_auth(aws_request)
        request = urllib.request.Request(self.moto_url + path, data=data, method="POST")
        for name, value in aws_request.headers.items():
            request.add_header(name, value)
        return self._send(request)

    @staticmethod
    def _send(request) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def duplicates(self) -> int:
        with self._lock:
            return sum(count - 1 for count in self.forwarded.values() if count > 1)
