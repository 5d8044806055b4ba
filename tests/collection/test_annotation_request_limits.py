"""Oversized requests over a real socket on 127.0.0.1: refused with 413 before the body is read, not buffered."""

import select
import socket
import time

import pytest

from lit_rlhf.collection.server import AnnotationServer
from lit_rlhf.collection.storage import AnnotationStore

pytest.importorskip("fastapi")
HEAD = b"POST /api/labels HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


@pytest.fixture
def server(tmp_path):
    store = AnnotationStore(tmp_path / "ann.sqlite")
    with AnnotationServer(store) as running:
        yield running
    store.close()


def read_response(sock: socket.socket) -> bytes:
    """Until the server closes. Closing with unread body bytes in its buffer makes the server's kernel send a
    reset after the response; the response was received before it, so it is kept."""
    out = b""
    try:
        while chunk := sock.recv(4096):
            out += chunk
    except ConnectionResetError:
        pass
    return out


def test_a_declared_large_body_is_refused_before_any_of_it_is_sent(server):
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(HEAD + b"Content-Length: 50000000\r\n\r\n")
        response = read_response(sock)  # the server answers and closes without waiting for the body
    assert response.startswith(b"HTTP/1.1 413") and b"request body over 16384 bytes" in response


def test_a_streamed_body_is_cut_off_once_it_passes_the_limit(server):
    """Chunked, so no length is declared: the server must stop reading, and answer while the client still sends."""
    total, sent, response = 32 * 2**20, 0, b""
    frame = b"%x\r\n" % 2**16 + b"x" * 2**16 + b"\r\n"
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
        sock.setblocking(False)
        deadline = time.monotonic() + 30
        while sent < total and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 5)
            if readable:
                sock.setblocking(True)
                response = read_response(sock)
                break
            if writable:
                try:
                    sent += sock.send(frame)
                except BlockingIOError:
                    pass
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    # What was sent before the answer sits in socket buffers (a few MB on loopback), not in the server.
    assert sent < total // 2, f"the server read {sent} bytes before refusing"


def test_a_long_url_is_refused_and_cut_short_for_the_access_log():
    """The server's access log prints the request target from the scope the app saw: it stays short."""
    import asyncio

    from uvicorn.protocols.utils import get_path_with_query_string

    from lit_rlhf.collection.server import LimitRequestSize

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/" + "b" * 5000,
        "query_string": b"x=" + b"y" * 5000,
        "headers": [],
    }
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):
        raise AssertionError("the app must not see this request")

    asyncio.run(LimitRequestSize(app)(scope, receive, send))
    assert sent[0]["status"] == 414 and len(get_path_with_query_string(scope)) < 100
