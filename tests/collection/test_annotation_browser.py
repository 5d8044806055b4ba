"""Label pairs by clicking in headless Chromium, driven over the Chrome DevTools protocol, then check the database."""

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request

import pytest

from lit_rlhf.collection.response_pairs import Comparison
from lit_rlhf.collection.server import AnnotationServer
from lit_rlhf.collection.storage import AnnotationStore

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.browser


class Page:
    """The little of the DevTools protocol this test needs: evaluate JS, click at an element's centre."""

    def __init__(self, ws_url: str):
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=30)
        self.next_id = 0

    def send(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def js(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 20.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError(f"page never satisfied {expression!r}; status: {self.js('document.body.innerText')!r}")

    def click(self, element_id: str):
        """A real mouse click (pressed + released) at the element's centre, as a person would."""
        box = self.js(
            f"(() => {{ const e = document.getElementById({element_id!r}); e.scrollIntoView({{block: 'center'}});"
            " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)


@pytest.fixture
def chromium(tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    pytest.importorskip("websocket", reason="needs websocket-client to speak the DevTools protocol")
    profile = tmp_path / "profile"
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            match = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            port = int(match.group(1)) if match else None
            if not line and proc.poll() is not None:
                pytest.fail(f"chromium exited with {proc.returncode}")
        if port is None:
            pytest.fail("chromium did not report its DevTools port")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


def open_page(port: int, url: str) -> Page:
    # The page's address goes in the query of DevTools' own URL: its '#' (a token link's fragment) is escaped so
    # that it reaches the page instead of ending DevTools' URL.
    request = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?{url.replace('#', '%23')}", method="PUT")
    target = json.loads(urllib.request.urlopen(request, timeout=10).read())
    return Page(target["webSocketDebuggerUrl"])


@pytest.mark.parametrize("access", ["token link", "open local mode"])
def test_label_pairs_by_clicking(chromium, tmp_path, access):
    store = AnnotationStore(tmp_path / "ann.sqlite", labels_per_pair=1)
    pairs = [
        Comparison(f"p{i}", f"what is {i} plus 2 ?", "math", f"the answer is {i + 2} .", f"maybe {i} .")
        for i in range(3)
    ]
    store.add_pairs(pairs)
    annotator = "browser-1"
    token = store.add_token(annotator) if access == "token link" else None
    with AnnotationServer(store) as server:
        page = open_page(chromium, server.link(token) if token else f"{server.url}/?annotator={annotator}")
        page.wait_for(
            "document.getElementById('task') && !document.getElementById('task').classList.contains('hidden')"
        )
        assert page.js("location.hash") == ""  # a token does not stay in the address bar

        # Choosing without rating is refused on the page and stores nothing.
        page.click("choose-left")
        assert "rate all three" in page.wait_for("document.getElementById('status').textContent")
        assert store.votes() == []

        clicked = {}
        for choice in ("left", "right", "tie"):
            pair_id = page.wait_for("document.getElementById('task').dataset.pairId")
            shown = {
                "left": page.js("document.getElementById('left').textContent"),
                "right": page.js("document.getElementById('right').textContent"),
            }
            for side in ("left", "right"):
                for criterion, value in (("helpfulness", 4), ("harmlessness", 5), ("fluency", 3)):
                    page.click(f"{side}-{criterion}-{value}")
            page.click(f"choose-{choice}")
            clicked[pair_id] = (choice, shown)
            page.wait_for(
                f"document.getElementById('task').dataset.pairId !== {pair_id!r}"
                " || !document.getElementById('done').classList.contains('hidden')"
            )
        page.wait_for("!document.getElementById('done').classList.contains('hidden')")
        page.ws.close()

    votes = {v.pair_id: v for v in store.votes()}
    assert set(votes) == set(clicked) == {"p0", "p1", "p2"}
    by_id = {p.pair_id: p for p in pairs}
    for pair_id, (choice, shown) in clicked.items():
        vote, pair = votes[pair_id], by_id[pair_id]
        assert vote.annotator == annotator and vote.source == "human"
        # The vote names the response that was on the clicked side, whatever the shown order was.
        if choice == "tie":
            assert vote.choice == "tie"
        else:
            picked = shown[choice]
            assert (pair.response_a if vote.choice == "A" else pair.response_b) == picked
        assert vote.ratings_a == vote.ratings_b == {"helpfulness": 4, "harmlessness": 5, "fluency": 3}
        assert vote.shown_order == ("AB" if shown["left"] == pair.response_a else "BA")
    store.close()
