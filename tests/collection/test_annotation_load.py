"""Many annotators labelling at once over real HTTP on 127.0.0.1: every label is stored exactly once."""

import http.client
import json
import threading
from collections import Counter

import pytest

from lit_rlhf.collection.pairs import Comparison
from lit_rlhf.collection.server import AnnotationServer
from lit_rlhf.collection.storage import AnnotationStore


class Client:
    def __init__(self, host: str, port: int):
        self.connection = http.client.HTTPConnection(host, port, timeout=60)

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        payload = json.dumps(body) if body is not None else None
        self.connection.request(method, path, payload, {"Content-Type": "application/json"} if body else {})
        response = self.connection.getresponse()
        return response.status, json.loads(response.read())


def run_load(tmp_path, annotators: int, labels_each: int, double_every: int = 7):
    store = AnnotationStore(tmp_path / "load.sqlite", labels_per_pair=annotators)
    store.add_pairs([Comparison(f"p{i:05d}", f"prompt {i}", "math", f"a {i}", f"b {i} b") for i in range(labels_each)])
    errors, statuses = [], Counter()
    lock = threading.Lock()
    with AnnotationServer(store) as server:
        def annotate(who: str):
            try:
                # The standard library's client: light on CPU, so the two cores go to the server.
                client = Client(server.host, server.port)
                for n in range(labels_each):
                    _, item = client.call("GET", f"/api/next?annotator={who}")
                    body = {"pair_id": item["pair_id"], "annotator": who, "choice": ("left", "right", "tie")[n % 3]}
                    for _ in range(2 if n % double_every == 0 else 1):  # some double submissions
                        status, _ = client.call("POST", "/api/labels", body)
                        with lock:
                            statuses[status] += 1
                assert client.call("GET", f"/api/next?annotator={who}")[1]["done"]
            except BaseException as err:  # noqa: BLE001 - surfaced in the main thread
                errors.append(repr(err))

        threads = [threading.Thread(target=annotate, args=(f"ann{i:02d}",)) for i in range(annotators)]
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
