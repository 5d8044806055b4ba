"""The annotation web app (FastAPI) and a server that runs it in a background thread (for notebooks and tests).

API (JSON):
    GET  /api/next?annotator=ID   -> {pair_id, prompt, left, right, shown_order, progress} or {done: true}
    POST /api/labels               {pair_id, annotator, choice: left|right|tie, ratings_left, ratings_right}
                                   -> 201 {status: "stored"} | 200 {status: "duplicate"} | 404 unknown pair
                                      | 409 different label already stored / pair not shown to annotator | 422 bad body
    GET  /api/progress[?annotator=ID], GET /api/health, GET / (the page)
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint annotations at runtime.

import socket
import threading
from importlib import resources

from lit_rlhf.collection.storage import (
    AnnotationStore,
    ConflictingLabel,
    NotAssigned,
    UnknownPair,
)


def create_app(store: AnnotationStore):
    """A FastAPI app over ``store``. Endpoints are plain ``def``: FastAPI runs them in its thread pool,
    and the store gives each thread its own SQLite connection."""
    from fastapi import FastAPI, HTTPException, Query
    from fastapi.responses import HTMLResponse, JSONResponse
    from pydantic import BaseModel, Field

    class LabelIn(BaseModel):
        pair_id: str = Field(min_length=1)
        annotator: str = Field(min_length=1, max_length=200)
        choice: str
        ratings_left: dict[str, int] = Field(default_factory=dict)
        ratings_right: dict[str, int] = Field(default_factory=dict)

    app = FastAPI(title="lit_rlhf annotation")
    page = resources.files("lit_rlhf.collection").joinpath("static/annotate.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/api/health")
    def health() -> dict:
        return {"ok": True}

    @app.get("/api/progress")
    def progress(annotator: str | None = None) -> dict:
        return store.progress(annotator)

    @app.get("/api/next")
    def next_pair(annotator: str = Query(min_length=1, max_length=200)) -> dict:
        try:
            item = store.next_pair(annotator.strip())
        except ValueError as err:
            raise HTTPException(422, str(err)) from None
        progress = store.progress(annotator.strip())
        return {"done": True, "progress": progress} if item is None else {**item, "progress": progress}

    @app.post("/api/labels")
    def submit(label: LabelIn):
        try:
            status = store.submit(label.pair_id, label.annotator.strip(), label.choice,
                                  label.ratings_left, label.ratings_right)
        except UnknownPair as err:
            raise HTTPException(404, str(err)) from None
        except (ConflictingLabel, NotAssigned) as err:
            raise HTTPException(409, str(err)) from None
        except ValueError as err:
            raise HTTPException(422, str(err)) from None
        return JSONResponse({"status": status}, status_code=201 if status == "stored" else 200)

    return app


class AnnotationServer:
    """Serve the app with uvicorn in a daemon thread; ``start()`` returns once it accepts connections.

    >>> with AnnotationServer(store) as server:   # doctest: +SKIP
    ...     print(server.url)
    """

    def __init__(self, store: AnnotationStore, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
        self.store, self.host, self.port, self.log_level = store, host, port, log_level
        self._server = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> "AnnotationServer":
        import uvicorn

        if self._thread is not None:
            raise RuntimeError("server already started")
        # Bind here, so port 0 gives a free port that is known before the thread starts.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit this; without it Nagle's algorithm and delayed ACKs add ~40 ms per request.
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.bind((self.host, self.port))
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(create_app(self.store), log_level=self.log_level, access_log=False,
                                timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name="annotation-server", daemon=True)
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
