"""Worldwide (MetaCLIP 2) curation: per-language metadata, routing, script padding, per-language t."""
from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from clipcurate.balancing.config import BalanceConfig
from clipcurate.balancing.entries import MetadataError, load_metadata
from clipcurate.balancing.matching import Matcher, WorldwideMatcher, match_reference, pad_entry
from clipcurate.balancing.sampling import (entry_probabilities, language_thresholds, t_for_proportion,
                                           tail_proportion, worldwide_probabilities)
from clipcurate.balancing.worldwide import Router, parse_lang_map
from clipcurate.schemas.uid import make_uid

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LAION = DATA / "img2dataset-tests" / "test_10000.parquet"
CLUEWEB = DATA / "resiliparse-warc" / "clueweb-quirk.warc.gz"
LANGS = ["de", "en", "es", "fr", "ja", "ko", "ru", "th", "zh"]


# -- matching: MetaCLIP 2 padding rule ----------------------------------------------------------

def test_unspaced_scripts_match_only_with_script_padding():
    entries = ["猫", "東京", "แมว", "東京タワー", "cat", "夜景"]
    plain, world = Matcher(entries), Matcher(entries, script_padding=True)
    hand_checked = {"我喜欢猫。": [0], "東京タワーの夜景": [1, 3, 5], "แมวน่ารัก": [2],
                    "a cat.": [4], "concatenate": [], "Tokyo 東京": [1]}
    for caption, want in hand_checked.items():
        assert world.match(caption) == want, caption
        assert match_reference(caption, entries, script_padding=True) == want
    # MetaCLIP 1 padding (the plain-list path) finds none of the unspaced matches
    assert [plain.match(c) for c in ("我喜欢猫。", "東京タワーの夜景", "แมวน่ารัก")] == [[], [], []]
    assert plain.match("a cat.") == [4] and plain.match("Tokyo 東京") == [1]


def test_pad_entry_rule():
    assert pad_entry("cat") == " cat " == pad_entry("cat", True)
    assert pad_entry("猫", True) == "猫"
    assert pad_entry("iPhone 猫", True) == " iPhone 猫"  # spaced start, unspaced end
    assert pad_entry("タワーA", True) == "タワーA "
    assert pad_entry("C++", True) == " C++"  # punctuation end: not padded (MetaCLIP 2's is_punctuation)


# -- metadata file format ---------------------------------------------------------------------------

def test_worldwide_metadata_file_ids_and_errors(tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"zh": ["猫", "狗", "猫"], "en": ["cat", " "], "ja": ["猫"]}, ensure_ascii=False))
    md = load_metadata(str(path))
    assert md.worldwide and md.entries == ["cat", " ", "猫", "猫", "狗", "猫"]  # languages sorted
    assert md.offsets() == {"en": (0, 2), "ja": (2, 1), "zh": (3, 3)}
    assert (md.num_blank, md.num_duplicate) == (1, 1)  # 猫 in ja and zh is not a duplicate
    assert md.summary()["language_entries"] == {"en": 2, "ja": 1, "zh": 3}
    for bad, msg in [({}, "empty"), ({"EN": ["a"]}, "lower-case"), ({"en": "cat"}, "expected a JSON array"),
                     ({"en": ["a", 3]}, "item 1")]:
        path.write_text(json.dumps(bad))
        with pytest.raises(MetadataError, match=msg):
            load_metadata(str(path))


def test_router():
    r = Router(["en", "zh", "nb", "other"])
    assert [r.route(c) for c in ("en", "zh", "yue", "no", "sv", "und", None)] == \
        ["en", "zh", "zh", "nb", "other", "other", "other"]
    assert Router(["en"], "other").route("sv") is None  # no "other" list
    assert Router(["en", "other"], "drop").route("sv") is None
    assert Router(["en", "zh"], lang_map=parse_lang_map(["ja=zh"])).route("ja") == "zh"
    with pytest.raises(ValueError, match="not languages of the metadata"):
        Router(["en"], lang_map={"ja": "zh"})
    with pytest.raises(ValueError, match="lid=metadata"):
        parse_lang_map(["ja"])


# -- per-language t (tail-proportion rule) -------------------------------------------------------

def _t_for_p_reference(counts, p):
    """From the paper/code, written naively: try every distinct count as t; the cumulative share of
    matches of the entries sorted by count up to and including that position, closest to p."""
    order = sorted(counts)
    total = sum(order)
    best = None
    running = 0
    for c in order:
        running += c
        d = abs(running / total - p)
        if best is None or d < best[0]:
            best = (d, c)
    return max(1, best[1])


def test_tail_proportion_rule_against_naive_reference():
    rng = np.random.default_rng(0)
    for _ in range(200):
        counts = rng.zipf(1.6, size=rng.integers(5, 400)).clip(max=10**6)
        counts[rng.random(counts.size) < 0.2] = 0
        p = float(rng.uniform(0.01, 0.99))
        assert t_for_proportion(counts, p) == _t_for_p_reference(counts.tolist(), p)
    en = np.array([100, 50, 10, 5, 1, 0])
    assert tail_proportion(en, 20) == pytest.approx(16 / 166)  # entries strictly below t, counted whole
    counts = np.concatenate([en, [40, 20, 8, 4, 2, 1, 1]])
    thresholds, p = language_thresholds(counts, {"en": (0, 6), "zh": (6, 7)}, t_en=20)
    assert thresholds == {"en": 20, "zh": 4} and p == pytest.approx(16 / 166)
    probs, _, _ = worldwide_probabilities(counts, {"en": (0, 6), "zh": (6, 7)}, t_en=20)
    assert probs.tolist() == entry_probabilities(en, 20).tolist() + entry_probabilities(counts[6:], 4).tolist()
    # no English match: every language keeps t_en; an explicit p overrides
    assert language_thresholds(counts * np.r_[[0] * 6, [1] * 7], {"en": (0, 6), "zh": (6, 7)}, 20)[0]["zh"] == 20
    assert language_thresholds(counts, {"en": (0, 6), "zh": (6, 7)}, 20, p=1.0)[0]["zh"] == 40
