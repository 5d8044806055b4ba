import threading

import pytest

from lit_rlhf.collection.response_pairs import Comparison
from lit_rlhf.collection.storage import AnnotationStore, ConflictingLabel, NotAssigned, UnknownPair

RATINGS = {"helpfulness": 4, "harmlessness": 5, "fluency": 3}


def make_pairs(n):
    return [Comparison(f"p{i}", f"prompt {i}", "math", f"answer a{i}", f"answer b {i} longer") for i in range(n)]


@pytest.fixture
def store(tmp_path):
    s = AnnotationStore(tmp_path / "ann.sqlite", labels_per_pair=2)
    s.add_pairs(make_pairs(3))
    yield s
    s.close()


def test_order_is_recorded_and_mapped_back(store):
    item = store.next_pair("ann")
    pair = {p.pair_id: p for p in store.pairs()}[item["pair_id"]]
    expected_left = pair.response_a if item["shown_order"] == "AB" else pair.response_b
    assert item["left"] == expected_left
    assert store.submit(item["pair_id"], "ann", "left", RATINGS, {}) == "stored"
    (vote,) = store.votes()
    assert vote.choice == ("A" if item["shown_order"] == "AB" else "B")
    assert vote.shown_order == item["shown_order"] and vote.source == "human"
    assert (vote.ratings_a if item["shown_order"] == "AB" else vote.ratings_b) == RATINGS
    assert vote.submitted_at >= vote.shown_at


def test_shown_orders_are_randomised(tmp_path):
    s = AnnotationStore(tmp_path / "x.sqlite")
    s.add_pairs(make_pairs(40))
    orders = [s.next_pair(f"a{i}")["shown_order"] for i in range(40)]
    assert {"AB", "BA"} == set(orders)


def test_resume_returns_the_pending_pair_and_each_annotator_gets_each_pair_once(store):
    first = store.next_pair("ann")
    assert store.next_pair("ann")["pair_id"] == first["pair_id"]  # not labelled yet: same pair again
    seen = []
    while (item := store.next_pair("ann")) is not None:
        seen.append(item["pair_id"])
        store.submit(item["pair_id"], "ann", "tie")
    assert sorted(seen) == ["p0", "p1", "p2"]


def test_a_pair_goes_to_labels_per_pair_annotators(store):
    served = {}
    for who in ("x", "y", "z"):
        while (item := store.next_pair(who)) is not None:
            store.submit(item["pair_id"], who, "right")
            served.setdefault(item["pair_id"], []).append(who)
    assert all(len(v) == 2 for v in served.values()) and len(served) == 3
    assert store.next_pair("z") is None  # every pair has its two labels


def test_double_submission_is_idempotent_and_a_different_one_is_refused(store):
    item = store.next_pair("ann")
    assert store.submit(item["pair_id"], "ann", "left", RATINGS, RATINGS) == "stored"
    assert store.submit(item["pair_id"], "ann", "left", RATINGS, RATINGS) == "duplicate"
    with pytest.raises(ConflictingLabel, match="already labelled"):
        store.submit(item["pair_id"], "ann", "right", RATINGS, RATINGS)
    assert len(store.votes()) == 1


def test_a_conflict_does_not_repeat_the_stored_label(store):
    item = store.next_pair("ann")
    store.submit(item["pair_id"], "ann", "left")
    with pytest.raises(ConflictingLabel) as refused:
        store.submit(item["pair_id"], "ann", "tie")
    assert (
        str(refused.value) == f"annotator 'ann' already labelled pair {item['pair_id']!r} differently; labels are final"
    )


def test_messages_cut_long_input_short(store):
    with pytest.raises(UnknownPair) as unknown:
        store.submit("n" * 100_000, "ann", "left")
    with pytest.raises(ValueError) as bad_choice:
        store.submit("p0", "ann", "c" * 100_000)
    assert all(len(str(err.value)) < 200 for err in (unknown, bad_choice))


def test_tokens_identify_their_holder_and_reissuing_revokes(store):
    alice, root = store.add_token("alice"), store.add_token("root", role="admin")
    assert store.identify(alice) == ("alice", "annotator") and store.identify(root) == ("root", "admin")
    assert store.identify("") is None and store.identify(alice + "x") is None
    renewed = store.add_token("alice")
    assert store.identify(alice) is None and store.identify(renewed) == ("alice", "annotator")
    assert store.token_names() == {"alice": "annotator", "root": "admin"} and store.has_tokens()
    with pytest.raises(ValueError, match="already has a token as admin"):
        store.add_token("root")
    for bad in ("", "two words", "x" * 65, "-dash", "a/b"):
        with pytest.raises(ValueError, match="must be 1-64 letters"):
            store.add_token(bad)


def test_bad_submissions_write_nothing(store):
    item = store.next_pair("ann")
    with pytest.raises(UnknownPair, match="nope"):
        store.submit("nope", "ann", "left")
    with pytest.raises(NotAssigned, match="never shown"):
        store.submit(item["pair_id"], "someone_else", "left")
    with pytest.raises(ValueError, match="choice"):
        store.submit(item["pair_id"], "ann", "A")
    with pytest.raises(ValueError, match="integer 1-5"):
        store.submit(item["pair_id"], "ann", "left", {**RATINGS, "fluency": 9})
    assert store.votes() == []


def test_re_adding_pairs_is_a_no_op_but_a_changed_pair_is_an_error(store):
    assert store.add_pairs(make_pairs(3)) == 0
    with pytest.raises(ValueError, match="different pair"):
        store.add_pairs([Comparison("p0", "other", "math", "x", "y")])


def test_labels_survive_reopening(tmp_path):
    s = AnnotationStore(tmp_path / "ann.sqlite")
    s.add_pairs(make_pairs(2))
    item = s.next_pair("ann")
    s.submit(item["pair_id"], "ann", "tie")
    s.close()
    again = AnnotationStore(tmp_path / "ann.sqlite")
    assert [v.pair_id for v in again.votes()] == [item["pair_id"]]
    assert again.next_pair("ann")["pair_id"] != item["pair_id"]


def test_threads_writing_at_once_store_every_label_once(tmp_path):
    s = AnnotationStore(tmp_path / "ann.sqlite", labels_per_pair=8)
    s.add_pairs(make_pairs(30))
    errors = []

    def work(who):
        try:
            while (item := s.next_pair(who)) is not None:
                s.submit(item["pair_id"], who, "left")
                s.submit(item["pair_id"], who, "left")  # a double click
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(f"a{i}",)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert errors == []
    keys = [(v.pair_id, v.annotator) for v in s.votes()]
    assert len(keys) == len(set(keys)) == 30 * 8
    assert s.check_integrity() == "ok"
