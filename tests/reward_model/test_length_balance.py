import pytest

from lit_rlhf.reward.length_balance import LengthBalancer, balance_by_length, bucket_index, bucket_names


def pair(chosen_words: int, rejected_words: int, tag: str) -> dict:
    return {"prompt": tag, "chosen": " ".join(["a"] * chosen_words), "rejected": " ".join(["b"] * rejected_words)}


def test_bucket_index_and_names():
    edges = [1, 5, 10]
    assert [bucket_index(d, edges) for d in (0, 1, 4, -4, 5, 9, 10, 99)] == [0, 1, 1, 1, 2, 2, 3, 3]
    assert bucket_names(edges) == ["equal", "1-4", "5-9", "10+"]
    with pytest.raises(ValueError, match="increasing"):
        balance_by_length([], [5, 1])


def hand_made():
    # Bucket 1-4: longer wins 3 times, loses once. Bucket 5-9: longer wins twice, never loses.
    # Bucket 10+: loses twice, wins twice (already balanced). One pair of equal length.
    return [
        pair(3, 1, "w1"),
        pair(4, 2, "w2"),
        pair(5, 4, "w3"),
        pair(1, 3, "l1"),
        pair(9, 2, "w4"),
        pair(8, 1, "w5"),
        pair(20, 5, "w6"),
        pair(30, 5, "w7"),
        pair(5, 20, "l2"),
        pair(5, 30, "l3"),
        pair(3, 3, "e1"),
    ]


def test_downsampling_balances_each_bucket_and_keeps_equal_pairs():
    kept, report = balance_by_length(hand_made(), edges=[1, 5, 10], mode="downsample", seed=0)
    assert report.before["1-4"] == {"longer_wins": 3, "longer_loses": 1, "equal": 0}
    assert report.after["1-4"] == {"longer_wins": 1, "longer_loses": 1, "equal": 0}
    assert report.after["5-9"] == {"longer_wins": 0, "longer_loses": 0, "equal": 0}  # one-sided bucket: dropped
    assert report.after["10+"] == report.before["10+"] == {"longer_wins": 2, "longer_loses": 2, "equal": 0}
    assert report.after["equal"]["equal"] == 1
    tags = [r["prompt"] for r in kept]
    assert len(tags) == 1 + 1 + 4 + 1 and {"l1", "w6", "w7", "l2", "l3", "e1"} <= set(tags)
    assert report.unit == "words"
    assert "1-4" in report.format() and "total" in report.format()


def test_downsampling_is_seeded():
    runs = {s: [r["prompt"] for r in balance_by_length(hand_made(), [1, 5, 10], seed=s)[0]] for s in range(8)}
    assert runs[0] == [r["prompt"] for r in balance_by_length(hand_made(), [1, 5, 10], seed=0)[0]]
    assert len({tuple(v) for v in runs.values()}) > 1  # different seeds keep different longer-wins pairs


def test_upsampling_repeats_the_minority():
    kept, report = balance_by_length(hand_made(), edges=[1, 5, 10], mode="upsample", seed=0)
    assert report.after["1-4"] == {"longer_wins": 3, "longer_loses": 3, "equal": 0}
    assert report.after["5-9"] == {"longer_wins": 2, "longer_loses": 0, "equal": 0}  # nothing to repeat
    assert [r["prompt"] for r in kept].count("l1") == 3


def test_token_unit_uses_the_tokenizer():
    class CharTokenizer:  # one token per character
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": list(range(len(text)))}

    rows = [{"prompt": "p", "chosen": "aaaaaa", "rejected": "b"}]  # 1 word each, 6 vs 1 chars
    by_tokens = LengthBalancer(edges=[1, 5], unit="tokens")(rows, CharTokenizer())[1]
    by_words = LengthBalancer(edges=[1, 5], unit="words")(rows, CharTokenizer())[1]
    assert by_tokens.before["5+"]["longer_wins"] == 1 and by_tokens.unit == "tokens"
    assert by_words.before["equal"]["equal"] == 1 and by_words.unit == "words"
    with pytest.raises(ValueError, match="unit"):
        LengthBalancer(unit="chars")


def skewed(wins: int, loses: int) -> list[dict]:
    """Pairs in one bucket (2 words apart): ``wins`` where the longer response won, ``loses`` where it lost."""
    return [pair(5, 3, f"w{i}") for i in range(wins)] + [pair(3, 5, f"l{i}") for i in range(loses)]


def test_a_large_drop_warns_with_the_share_and_how_to_turn_balancing_off():
    rows = skewed(wins=16, loses=2)  # downsampling keeps 2 + 2 of 18 pairs
    with pytest.warns(UserWarning, match=r"dropped 14 of 18 training pairs \(78%\).*`data.length_balance=null`"):
        kept, report = LengthBalancer(unit="words")(rows)
    assert len(kept) == 4
    counts = report.as_dict()
    assert (counts["pairs_before"], counts["pairs_after"], counts["dropped"]) == (18, 4, 14)
    assert counts["dropped_share"] == pytest.approx(14 / 18, abs=1e-4)


def test_no_warning_below_the_threshold_or_when_turned_off(recwarn):
    LengthBalancer(unit="words")(skewed(wins=6, loses=4))  # drops 2 of 10
    LengthBalancer(unit="words", warn_drop_share=None)(skewed(wins=16, loses=2))
    _, report = LengthBalancer(unit="words", mode="upsample")(skewed(wins=16, loses=2))
    assert not [w for w in recwarn if "length balancing" in str(w.message)]
    assert report.dropped == 0 and report.pairs_after == 32  # up-sampling drops nothing
    with pytest.warns(UserWarning, match="more than warn_drop_share=0.1"):
        LengthBalancer(unit="words", warn_drop_share=0.1)(skewed(wins=6, loses=4))


@pytest.mark.parametrize("share", [1.0, -0.1, "half", True])
def test_bad_warn_drop_share_is_a_config_error(share):
    from lit_rlhf.data.errors import ConfigError

    with pytest.raises(ConfigError, match="warn_drop_share must be in"):
        LengthBalancer(warn_drop_share=share)
