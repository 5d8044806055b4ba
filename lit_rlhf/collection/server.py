"""The annotation web app (FastAPI) and a server that runs it in a background thread (for notebooks and tests).

Access. Once the database holds a token (``lit-rlhf-annotate add-annotator``), every API call needs
``Authorization: Bearer <token>``: the annotator is the token's holder, whatever the request says, and an admin
token (``add-admin``) reads every label but cannot label. A database without tokens is served in *open local
mode*: loopback clients only, each request names its annotator; serving it on any other address is refused.

API (JSON):
    GET  /api/me                    -> {mode: "token"|"open", name, role}
    GET  /api/next[?annotator=ID]   -> {pair_id, prompt, left, right, shown_order, progress} or {done: true, progress}
    POST /api/labels                {pair_id, choice: left|right|tie, ratings_left, ratings_right[, annotator]}
                                    -> 201 {status: "stored"} | 200 {status: "duplicate"} | 404 unknown pair
                                       | 409 this annotator labelled the pair differently / was never shown it
    GET  /api/progress[?annotator=ID], GET /api/admin/votes (admin), GET /api/health, GET / (the page)
    Refusals: 401 no or unknown token, 403 wrong role or a name that is not the token's, 413 body over
    ``max_body_bytes``, 414 URL over ``MAX_TARGET_BYTES``, 422 a bad field, named (the input is never echoed).
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint annotations at runtime.

import ipaddress
import json
import logging
import socket
import threading
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Literal

from lit_rlhf.collection.storage import (
    NAME_PATTERN,
    AnnotationStore,
    ConflictingLabel,
    NotAssigned,
    UnknownPair,
)
from lit_rlhf.collection.votes import CRITERIA

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024  # a label with all ratings is ~300 bytes
MAX_TARGET_BYTES = 2048  # path + query string
MAX_PAIR_ID_CHARS = 200
IN_PROCESS_PEER = "testclient"  # the peer Starlette's TestClient reports: the app called in-process, no socket


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serving_mode(store: AnnotationStore, host: str) -> str:
    """The mode to serve ``store`` in: "token" when it holds tokens, else "open" (logged loudly), which is refused
    on any host but loopback."""
    if store.has_tokens():
        return "token"
    if not is_loopback(host):
        raise ValueError(
            f"refusing to serve {store.path} on {host} without tokens (anyone reaching the port could "
            f"label as anyone): run `lit-rlhf-annotate add-annotator --db {store.path} NAME` "
            "for each annotator, or serve on 127.0.0.1"
        )
    logger.warning(
        "OPEN LOCAL MODE: %s has no tokens, so any program on this machine can label as any annotator id "
        "(other machines are refused). To serve other people, issue tokens: "
        "lit-rlhf-annotate add-annotator --db %s NAME",
        store.path,
        store.path,
    )
    return "open"


def describe_validation_errors(errors) -> str:
    """``pydantic`` errors as one line naming each field, without the input: ``ratings_left.fluency: Input should be
    a valid integer``. Parts of a location are cut short too (a dict key is user input)."""
    parts = []
    for error in errors[:3]:
        where, *path = error["loc"] or ("body",)
        field = ".".join(str(part)[:40] for part in path) if error["type"] != "json_invalid" else ""
        field = field or where
        parts.append(f"{field}{' (query)' if where == 'query' else ''}: {str(error['msg'])[:200]}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


class LimitRequestSize:
    """ASGI middleware: refuse a body over ``max_body_bytes`` with 413, before reading it (``Content-Length``) or as
    soon as the streamed body passes the limit (chunked); refuse a path + query over ``max_target_bytes`` with 414.
    At most ``max_body_bytes`` of a body is ever held; the app gets the body in one piece."""

    def __init__(self, app, max_body_bytes: int = MAX_BODY_BYTES, max_target_bytes: int = MAX_TARGET_BYTES):
        self.app, self.max_body_bytes, self.max_target_bytes = app, max_body_bytes, max_target_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if len(scope["path"].encode()) + len(scope["query_string"]) > self.max_target_bytes:
            # The server's access log prints the target from this scope: keep it short there too.
            scope["path"], scope["query_string"] = scope["path"][:64] + "...", b""
            return await refuse(send, 414, f"URL longer than {self.max_target_bytes} bytes")
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and not declared.isdigit():
            return await refuse(send, 400, "Content-Length is not a number")
        if declared is not None and int(declared) > self.max_body_bytes:
            return await refuse(send, 413, f"request body over {self.max_body_bytes} bytes")
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                return await refuse(send, 413, f"request body over {self.max_body_bytes} bytes")
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: a disconnect, when it comes
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        return await self.app(scope, replay, send)


async def refuse(send, status: int, detail: str) -> None:
    """A JSON error that closes the connection: the rest of the body is never read."""
    payload = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


@dataclass(frozen=True)
class Caller:
    """Who sent a request: a token's ``name`` and ``role`` ("annotator" | "admin"), or role "open" (no tokens)."""

    name: str | None
    role: str


def create_app(store: AnnotationStore, max_body_bytes: int = MAX_BODY_BYTES):
    """A FastAPI app over ``store``. Endpoints are plain ``def``: FastAPI runs them in its thread pool, and the store
    gives each thread its own SQLite connection. The mode (token / open) is read from the store on each request, so
    a token issued while the server runs closes open mode at once. ``app.state.store`` is ``store``."""
    from fastapi import Depends, FastAPI, HTTPException, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from pydantic import BaseModel, ConfigDict, Field, StringConstraints

    Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
    Ratings = Annotated[dict[Annotated[str, StringConstraints(max_length=32)], int], Field(max_length=len(CRITERIA))]

    class LabelIn(BaseModel):
        # strict: `true` and "4" are not ratings, 4.0 is not an id; unknown fields are refused, not dropped.
        model_config = ConfigDict(strict=True, extra="forbid")
        pair_id: Annotated[str, StringConstraints(min_length=1, max_length=MAX_PAIR_ID_CHARS)]
        choice: Literal["left", "right", "tie"]
        ratings_left: Ratings = Field(default_factory=dict)
        ratings_right: Ratings = Field(default_factory=dict)
        annotator: Name | None = None  # open mode: who labels; token mode: must be the token's annotator if given

    app = FastAPI(title="lit_rlhf annotation", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.add_middleware(LimitRequestSize, max_body_bytes=max_body_bytes)
    page = resources.files("lit_rlhf.collection").joinpath("static/annotate.html").read_text(encoding="utf-8")

    @app.exception_handler(RequestValidationError)
    def invalid(request, err):
        return JSONResponse({"detail": describe_validation_errors(err.errors())}, status_code=422)

    def caller(request: Request) -> Caller:
        if not store.has_tokens():
            peer = request.client.host if request.client else ""
            if not (is_loopback(peer) or peer == IN_PROCESS_PEER):
                raise HTTPException(403, "open local mode (no tokens) serves this machine only")
            return Caller(None, "open")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        found = store.identify(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if found is None:
            raise HTTPException(
                401,
                "a valid token is needed (Authorization: Bearer <token>); `lit-rlhf-annotate add-annotator` issues one",
                {"WWW-Authenticate": "Bearer"},
            )
        return Caller(*found)

    Who = Annotated[Caller, Depends(caller)]

    def annotator_of(who: Caller, named: str | None) -> str:
        """The annotator a request acts for: the token's holder, or in open mode the one it names."""
        if who.role == "open":
            if named is None:
                raise HTTPException(422, "annotator: required when the server has no tokens (open local mode)")
            return named
        if who.role != "annotator":
            raise HTTPException(403, "an admin token cannot label; use an annotator token")
        if named is not None and named != who.name:
            raise HTTPException(403, "annotator: not the annotator of this token")
        return who.name

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/api/health")
    def health() -> dict:
        return {"ok": True}

    @app.get("/api/me")
    def me(who: Who) -> dict:
        return {"mode": "open" if who.role == "open" else "token", "name": who.name, "role": who.role}

    @app.get("/api/progress")
    def progress(who: Who, annotator: Annotated[Name | None, Query()] = None) -> dict:
        name = annotator if who.role in ("open", "admin") else annotator_of(who, annotator)
        return store.progress(name)

    @app.get("/api/next")
    def next_pair(who: Who, annotator: Annotated[Name | None, Query()] = None) -> dict:
        name = annotator_of(who, annotator)
        item = store.next_pair(name)
        progress = store.progress(name)
        return {"done": True, "progress": progress} if item is None else {**item, "progress": progress}

    @app.post("/api/labels")
    def submit(label: LabelIn, who: Who):
        name = annotator_of(who, label.annotator)
        try:
            status = store.submit(label.pair_id, name, label.choice, label.ratings_left, label.ratings_right)
        except UnknownPair as err:
            raise HTTPException(404, str(err)) from None
        except (ConflictingLabel, NotAssigned) as err:
            raise HTTPException(409, str(err)) from None
        except ValueError as err:
            raise HTTPException(422, str(err)) from None
        return JSONResponse({"status": status}, status_code=201 if status == "stored" else 200)

    @app.get("/api/admin/votes")
    def all_votes(who: Who) -> dict:
        if who.role not in ("admin", "open"):
            raise HTTPException(403, "every annotator's labels are for admin tokens only")
        return {"votes": [vote.to_row() for vote in store.votes()]}

    return app


class AnnotationServer:
    """Serve the app with uvicorn in a daemon thread; ``start()`` returns once it accepts connections.

    A store without tokens is served in open local mode (loopback only); with tokens, hand each annotator
    ``server.link(token)``.

    >>> with AnnotationServer(store) as server:   # doctest: +SKIP
    ...     print(server.url)
    """

    def __init__(
        self,
        store: AnnotationStore,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        max_body_bytes: int = MAX_BODY_BYTES,
    ):
        self.store, self.host, self.port, self.log_level = store, host, port, log_level
        self.max_body_bytes = max_body_bytes
        self.mode: str | None = None
        self._server = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def link(self, token: str) -> str:
        """The page's address for one token holder; the token rides in the fragment, which browsers never send."""
        return f"{self.url}/#token={token}"

    def start(self, timeout_s: float = 30.0) -> "AnnotationServer":
        import uvicorn

        if self._thread is not None:
            raise RuntimeError("server already started")
        self.mode = serving_mode(self.store, self.host)
        # Bind here, so port 0 gives a free port that is known before the thread starts.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit this; without it Nagle's algorithm and delayed ACKs add ~40 ms per request.
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.bind((self.host, self.port))
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.store, self.max_body_bytes),
            log_level=self.log_level,
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="annotation-server", daemon=True
        )
        self._thread.start()
        deadline = timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("annotation server failed to start (see the log above)")
            self._thread.join(0.05)
            deadline -= 0.05
            if deadline <= 0:
                self.stop()
                raise TimeoutError(f"annotation server did not start within {timeout_s} s")
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish in-flight requests and stop; safe to call twice."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._socket is not None:
            self._socket.close()
        self._server, self._thread, self._socket = None, None, None

    def __enter__(self) -> "AnnotationServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
