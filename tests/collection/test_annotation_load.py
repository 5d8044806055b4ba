"""Many annotators labelling at once with their tokens over real HTTP on 127.0.0.1: every label is stored exactly
once, and a server killed mid-load (SIGKILL) keeps every label it acknowledged."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter

import pytest

from lit_rlhf.collection.response_pairs import Comparison
from lit_rlhf.collection.server import AnnotationServer
from lit_rlhf.collection.storage import SHOWN_TO_CANONICAL, AnnotationStore


class Client:
    def __init__(self, host: str, port: int, token: str, timeout_s: float = 60):
        self.connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        payload = json.dumps(body) if body is not None else None
        headers = {**self.headers, "Content-Type": "application/json"} if body else self.headers
        self.connection.request(method, path, payload, headers)
        response = self.connection.getresponse()
        return response.status, json.loads(response.read())


def run_load(tmp_path, annotators: int, labels_each: int, double_every: int = 7):
    store = AnnotationStore(tmp_path / "load.sqlite", labels_per_pair=annotators)
    store.add_pairs([Comparison(f"p{i:05d}", f"prompt {i}", "math", f"a {i}", f"b {i} b") for i in range(labels_each)])
    tokens = {f"ann{i:02d}": store.add_token(f"ann{i:02d}") for i in range(annotators)}
    errors, statuses = [], Counter()
    lock = threading.Lock()
    with AnnotationServer(store) as server:

        def annotate(who: str):
            try:
                # The standard library's client: light on CPU, so the two cores go to the server.
                client = Client(server.host, server.port, tokens[who])
                for n in range(labels_each):
                    _, item = client.call("GET", "/api/next")
                    body = {"pair_id": item["pair_id"], "choice": ("left", "right", "tie")[n % 3]}
                    for _ in range(2 if n % double_every == 0 else 1):  # some double submissions
                        status, _ = client.call("POST", "/api/labels", body)
                        with lock:
                            statuses[status] += 1
                assert client.call("GET", "/api/next")[1]["done"]
            except BaseException as err:  # noqa: BLE001 - surfaced in the main thread
                errors.append(repr(err))

        threads = [threading.Thread(target=annotate, args=(who,)) for who in tokens]
        [t.start() for t in threads]
        [t.join() for t in threads]
    assert errors == []
    votes = store.votes()
    keys = Counter((v.pair_id, v.annotator) for v in votes)
    assert len(votes) == annotators * labels_each and max(keys.values()) == 1
    assert Counter(v.annotator for v in votes) == {f"ann{i:02d}": labels_each for i in range(annotators)}
    doubles = annotators * len(range(0, labels_each, double_every))
    assert statuses == {201: annotators * labels_each, 200: doubles}
    assert store.check_integrity() == "ok"
    store.close()


def test_concurrent_annotators_reduced(tmp_path):
    run_load(tmp_path, annotators=8, labels_each=25)


@pytest.mark.slow
def test_concurrent_annotators_full(tmp_path):
    run_load(tmp_path, annotators=20, labels_each=500)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(db, port: int, labels_per_pair: int, timeout_s: float = 45.0) -> subprocess.Popen:
    """``lit-rlhf-annotate serve`` in its own process, once it answers on 127.0.0.1."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lit_rlhf.cli.annotate",
            "serve",
            "--db",
            str(db),
            "--labels-per-pair",
            str(labels_per_pair),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as response:
                if response.status == 200:
                    return proc
        except OSError:
            time.sleep(0.1)
    stop(proc)
    raise TimeoutError(f"the server did not answer within {timeout_s} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def label_until_stopped(
    port: int,
    token: str,
    n_labels: int,
    acknowledged: list,
    lock: threading.Lock,
    errors: list,
    killed: threading.Event,
) -> None:
    """Take and label pairs until none is left or the server is killed; a label answered 201/200 is acknowledged."""
    try:
        client = Client("127.0.0.1", port, token, timeout_s=20)
        for n in range(n_labels + 1):
            status, item = client.call("GET", "/api/next")
            if item.get("done"):
                return
            choice = ("left", "right", "tie")[n % 3]
            status, _ = client.call("POST", "/api/labels", {"pair_id": item["pair_id"], "choice": choice})
            if status not in (200, 201):
                errors.append(f"label answered {status}")
                return
            with lock:
                acknowledged.append((item["pair_id"], token, item["shown_order"], choice))
        errors.append("more pairs served than there are")
    except (ConnectionError, http.client.HTTPException, OSError) as err:
        if not killed.is_set():
            errors.append(repr(err))


def test_sigkill_mid_load_keeps_every_acknowledged_label(tmp_path):
    annotators, n_pairs = 6, 40
    db = tmp_path / "killed.sqlite"
    store = AnnotationStore(db, labels_per_pair=annotators)
    store.add_pairs([Comparison(f"p{i:03d}", f"prompt {i}", "math", f"a {i}", f"b {i} b") for i in range(n_pairs)])
    tokens = {store.add_token(f"ann{i}"): f"ann{i}" for i in range(annotators)}
    store.close()

    acknowledged, errors, lock, killed = [], [], threading.Lock(), threading.Event()
    for round_ in ("killed", "finished"):
        port = free_port()
        server = start_server(db, port, annotators)
        try:
            threads = [
                threading.Thread(
                    target=label_until_stopped, args=(port, token, n_pairs, acknowledged, lock, errors, killed)
                )
                for token in tokens
            ]
            [t.start() for t in threads]
            if round_ == "killed":  # mid-load: a third of the labels in, annotators still sending
                deadline = time.monotonic() + 30
                while len(acknowledged) < annotators * n_pairs // 3 and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert len(acknowledged) < annotators * n_pairs, "the load ended before the kill"
                killed.set()
                os.kill(server.pid, signal.SIGKILL)
            [t.join(60) for t in threads]
            assert not any(t.is_alive() for t in threads) and errors == []
            killed.clear()
        finally:
            stop(server)
        store = AnnotationStore(db, labels_per_pair=annotators)
        assert store.check_integrity() == "ok"
        votes = {(v.pair_id, v.annotator): v for v in store.votes()}
        for pair_id, token, shown_order, choice in acknowledged:
            vote = votes.get((pair_id, tokens[token]))
            assert vote is not None, f"{round_}: acknowledged label {pair_id}/{tokens[token]} is missing"
            assert vote.choice == SHOWN_TO_CANONICAL[shown_order][choice]
        store.close()
    # After the restart everyone finished: each annotator labelled each pair once.
    assert len(votes) == annotators * n_pairs
