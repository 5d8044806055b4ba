"""Equal samples among the k responses give each comparison once, and the annotation tools accept the file."""

from lit_rlhf.collection.io import read_pairs, write_pairs
from lit_rlhf.collection.response_pairs import build_comparisons
from lit_rlhf.data.errors import SkipReport


def test_a_repeated_pair_is_kept_once_and_counted(tmp_path):
    # responses 0 and 2 are the same answer (up to whitespace): (0,1) and (1,2) are one comparison in two
    # orders, (0,3) and (2,3) the same one twice, and (0,2) compares an answer with itself.
    rows = [
        {"prompt": "p", "category": "c", "responses": ["x y", "z", "x  y", "w"]},
        {"prompt": "q", "category": "c", "responses": ["x y", "z"]},
    ]
    skips = SkipReport()
    pairs = build_comparisons(rows, skips)
    assert [(p.prompt, p.response_a, p.response_b) for p in pairs] == [
        ("p", "x y", "z"),
        ("p", "x y", "w"),
        ("p", "z", "w"),
        ("q", "x y", "z"),
    ]
    assert skips.kept == 4
    assert dict(skips.counts) == {"identical_responses": 1, "repeated_pair": 2}
    assert len({p.pair_id for p in pairs}) == len(pairs)
    # the annotation store's reader refuses repeated pair ids; the sampled pairs pass it
    path = write_pairs(tmp_path / "pairs.jsonl", pairs)
    assert [p.pair_id for p in read_pairs(path)] == [p.pair_id for p in pairs]
