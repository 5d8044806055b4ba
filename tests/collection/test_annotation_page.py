"""The annotation page's script run in Node against a real server, with the few DOM calls it makes stubbed.

No browser is needed (tests/collection/test_annotation_browser.py clicks the same page in Chromium where Chromium is
installed): this checks the page's own logic, the token taken from the link and sent as a header, the login
for a wrong token, open local mode, and that the labels land in the database as clicked."""

import json
import re
import shutil
import subprocess
from importlib import resources

import pytest

from lit_rlhf.collection.response_pairs import Comparison
from lit_rlhf.collection.server import AnnotationServer
from lit_rlhf.collection.storage import SHOWN_TO_CANONICAL, AnnotationStore

pytest.importorskip("fastapi")
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node.js (18 or later) to run the page's script")

# A document of the page's elements (ids and initial classes read from the HTML), location, history, storage,
# and fetch against the server; then the scenario, which prints a JSON report.
HARNESS = r"""
const [html, base, address, scenario] = process.argv.slice(2)
  .map((a, i) => i === 0 ? require("fs").readFileSync(a, "utf8") : a);
const byId = new Map(), inputs = [];
class Element {
  constructor(tag, id, classes) {
    this.tag = tag; this.id = id || ""; this.children = []; this.listeners = {}; this.dataset = {};
    this.value = ""; this.checked = false; this.textContent = ""; this.className = "";
    const set = new Set(classes || []);
    this.classList = {add: (c) => set.add(c), remove: (c) => set.delete(c), contains: (c) => set.has(c),
                      toggle: (c, on) => (on ?? !set.has(c)) ? set.add(c) : set.delete(c)};
  }
  set innerHTML(_) { this.children = []; }
  append(...items) {
    for (const item of items) if (item instanceof Element) {
      this.children.push(item);
      if (item.id) byId.set(item.id, item);
      if (item.tag === "input") inputs.push(item);
    }
  }
  addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
  click() {
    if (this.tag === "input" && this.type === "radio") {
      for (const other of inputs) if (other.name === this.name) other.checked = false;
      this.checked = true;
    }
    for (const fn of this.listeners.click || []) fn();
  }
}
for (const m of html.matchAll(/<(\w+)[^>]*\bid="([^"]+)"[^>]*>/g)) {
  const cls = /class="([^"]*)"/.exec(m[0]);
  byId.set(m[2], new Element(m[1], m[2], cls ? cls[1].split(/\s+/) : []));
}
function storage() { const m = new Map(); return {getItem: (k) => m.has(k) ? m.get(k) : null,
  setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k)}; }
const url = new URL(address);
const location = {pathname: url.pathname, search: url.search, hash: url.hash};
const sent = [];
Object.assign(globalThis, {
  document: {
    getElementById: (id) => byId.get(id) || null,
    createElement: (tag) => new Element(tag),
    querySelector: (sel) => {
      const m = /^input\[name="([^"]+)"\]:checked$/.exec(sel);
      if (!m) throw new Error("selector not stubbed: " + sel);
      // only the inputs of the ratings on the page now (the last ones created under each id)
      return inputs.find((i) => byId.get(i.id) === i && i.name === m[1] && i.checked) || null;
    },
  },
  location, localStorage: storage(), sessionStorage: storage(),
  history: {replaceState: (_s, _t, to) => { const u = new URL(to, base); Object.assign(location,
    {pathname: u.pathname, search: u.search, hash: u.hash}); }},
});
const realFetch = fetch;
globalThis.fetch = (path, options = {}) => { sent.push({path, headers: options.headers || {}});
  return realFetch(base + path, options); };
const $ = (id) => byId.get(id);
const hidden = (id) => $(id).classList.contains("hidden");
async function waitFor(check, what) {
  for (let i = 0; i < 400; i++) { const v = check(); if (v) return v; await new Promise((r) => setTimeout(r, 25)); }
  throw new Error("timed out waiting for " + what + "; status: " + $("status").textContent);
}
async function label(choices) {
  const clicked = {};
  for (const choice of choices) {
    const pairId = await waitFor(() => !hidden("task") && $("task").dataset.pairId, "a pair");
    const shown = {left: $("left").textContent, right: $("right").textContent};
    for (const side of ["left", "right"])
      for (const [c, v] of [["helpfulness", 4], ["harmlessness", 5], ["fluency", 3]]) $(`${side}-${c}-${v}`).click();
    $("choose-" + choice).click();
    clicked[pairId] = [choice, shown];
    await waitFor(() => $("task").dataset.pairId !== pairId || !hidden("done"), "the next pair");
  }
  await waitFor(() => !hidden("done"), "the done message");
  return clicked;
}
(async () => {
  const report = {};
  eval(/<script>([\s\S]*)<\/script>/.exec(html)[1]);
  if (scenario === "wrong-token") {
    await waitFor(() => !hidden("login-token") && hidden("login-open"), "the token field");
    report.message = $("status").textContent;
    $("token").value = process.env.TOKEN;
    $("start").click();
  }
  if (scenario !== "open") {
    await waitFor(() => !hidden("task"), "the task");
    report.who = $("who").textContent;
  }
  if (scenario === "link") {
    $("choose-left").click();  // no ratings yet: refused on the page
    report.unrated = await waitFor(() => $("status").textContent, "a status");
  }
  report.clicked = await label(["left", "right", "tie"]);
  report.hash = location.hash;
  report.stored_token = sessionStorage.getItem("token");
  report.api_calls = sent.filter((s) => s.path.startsWith("/api/")).map((s) => ({path: s.path,
    auth: s.headers.Authorization || null}));
  console.log(JSON.stringify(report));
})().catch((e) => { console.error(String(e.stack || e)); process.exit(1); });
"""

PAIRS = [
    Comparison(f"p{i}", f"what is {i} plus 2 ?", "math", f"the answer is {i + 2} .", f"maybe {i} .") for i in range(3)
]


def run_page(tmp_path, server: AnnotationServer, address: str, scenario: str, env: dict | None = None) -> dict:
    page = tmp_path / "annotate.html"
    page.write_text(resources.files("lit_rlhf.collection").joinpath("static/annotate.html").read_text("utf-8"))
    script = tmp_path / "harness.js"
    script.write_text(HARNESS)
    done = subprocess.run(
        [NODE, str(script), str(page), server.url, address, scenario],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_votes(store: AnnotationStore, clicked: dict, annotator: str) -> None:
    """Each stored vote is the clicked side's response, by the expected annotator."""
    votes = {v.pair_id: v for v in store.votes()}
    assert set(votes) == set(clicked) == {"p0", "p1", "p2"}
    by_id = {p.pair_id: p for p in PAIRS}
    for pair_id, (choice, shown) in clicked.items():
        vote, pair = votes[pair_id], by_id[pair_id]
        shown_order = "AB" if shown["left"] == pair.response_a else "BA"
        assert vote.annotator == annotator and vote.shown_order == shown_order
        assert vote.choice == SHOWN_TO_CANONICAL[shown_order][choice]
        assert vote.ratings_a == vote.ratings_b == {"helpfulness": 4, "harmlessness": 5, "fluency": 3}


@pytest.fixture
def store(tmp_path):
    s = AnnotationStore(tmp_path / "ann.sqlite", labels_per_pair=1)
    s.add_pairs(PAIRS)
    yield s
    s.close()


def test_a_token_link_labels_as_its_holder_and_leaves_the_address_bar(tmp_path, store):
    token = store.add_token("ann-1")
    with AnnotationServer(store) as server:
        report = run_page(tmp_path, server, server.link(token), "link")
    assert report["who"] == "ann-1" and "rate all three" in report["unrated"]
    assert report["hash"] == "" and report["stored_token"] == token
    assert report["api_calls"] and all(call["auth"] == f"Bearer {token}" for call in report["api_calls"])
    assert not any("annotator=" in call["path"] for call in report["api_calls"])  # the token says who
    check_votes(store, report["clicked"], "ann-1")


def test_a_wrong_token_asks_for_the_right_one(tmp_path, store):
    token = store.add_token("ann-2")
    with AnnotationServer(store) as server:
        report = run_page(tmp_path, server, f"{server.url}/#token=forged", "wrong-token", {"TOKEN": token})
    assert "not valid" in report["message"] and report["who"] == "ann-2"
    check_votes(store, report["clicked"], "ann-2")


def test_open_local_mode_takes_the_annotator_id(tmp_path, store):
    with AnnotationServer(store) as server:
        assert server.mode == "open"
        report = run_page(tmp_path, server, f"{server.url}/?annotator=browser-1", "open")
    assert all(re.search(r"annotator=browser-1", c["path"]) for c in report["api_calls"] if "next" in c["path"])
    check_votes(store, report["clicked"], "browser-1")
