"""CaptionTokenizer gives exactly open_clip's ids on real captions (both backends), and the
handler combines ids made upstream with captions tokenised in place."""
import json
import os
import pickle
import random
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import open_clip
import pyarrow.parquet as pq
import pytest

from clipcurate.scoring.model import TINY_MODEL, load_clip
from clipcurate.scoring.scorer import ClipScorer
from clipcurate.scoring.tokens import CaptionTokenizer, load_caption_tokenizer
from clipcurate.testing.shared_data import SHARED_DATA

DATA = SHARED_DATA
BACKENDS = ["python", pytest.param("hf", marks=pytest.mark.skipif(
    CaptionTokenizer(open_clip.get_tokenizer("ViT-B-32")).uses_hf is False, reason="tokenizers not installed"))]


def real_captions(n=2000):
    caps = pq.read_table(DATA / "img2dataset-tests" / "test_10000.parquet", columns=["TEXT"]).column("TEXT")
    caps = [c for c in caps.to_pylist() if c]
    rng = random.Random(0)
    picked = rng.sample(caps, n)
    good = json.loads((DATA / "clipscore-example" / "good_captions.json").read_text())
    return picked + list(good.values())


def edge_cases():
    rng = random.Random(1)
    alphabet = "aZ09 '&;<>_\t\n\r\x0b\x0c\x00\x7f!?.,-sdtmlrev" + "éß漢ﬁ＂“”\u00a0\u2028"
    made = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(400)]
    return made + ["", "   ", "<start_of_text> a <end_of_text>", "&amp;amp;amp; fish &lt;b&gt;", "It'S THE cat'll",
                   "Ã©cole mojibake", "a " * 100, "ｆｕｌｌｗｉｄｔｈ", "tab\tsep\nline"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_ids_equal_open_clip(backend, model="ViT-B-32"):
    caps = real_captions() + edge_cases()
    ref = open_clip.get_tokenizer(model)(caps).numpy()
    ids, truncated = CaptionTokenizer(open_clip.get_tokenizer(model), backend)(caps)
    bad = [caps[i] for i in np.nonzero((ids != ref).any(1))[0][:3]]
    assert not bad, bad
    assert ids.dtype == np.int32 and ids.shape == ref.shape
    assert 0 < sum(truncated) < len(caps)  # real long alt-texts get truncated, most do not
    tok = open_clip.get_tokenizer(model)
    want = [len(tok.encode(tok.clean_fn(c))) + 2 > ids.shape[1] for c in caps[:300]]
    assert truncated[:300] == want


def test_pickles_and_loads_by_name_or_checkpoint(tmp_path):
    from clipcurate.scoring.model import save_checkpoint
    ct = CaptionTokenizer(open_clip.get_tokenizer(TINY_MODEL))
    ct(["warm up"])
    again = pickle.loads(pickle.dumps(ct))
    assert np.array_equal(again(["a red bus"])[0], ct(["a red bus"])[0])
    ckpt = tmp_path / "t.pt"
    save_checkpoint(ckpt, load_clip(TINY_MODEL, random_init=True).model, TINY_MODEL)
    assert load_caption_tokenizer("", str(ckpt)).context_length == 32
    with pytest.raises(ValueError, match="choose auto, hf, python"):
        CaptionTokenizer(open_clip.get_tokenizer(TINY_MODEL), "fast")


def test_handler_mixes_upstream_tokens_and_in_place_tokenising():
    pytest.importorskip("apache_beam")
    from clipcurate.scoring.handler import batch_tokens
    scorer = ClipScorer(load_clip(TINY_MODEL, random_init=True))
    caps = ["a photo of a fish", "a long caption " * 20, "a dog"]
    ids, trunc = scorer.captions(caps)
    recs = [{"uid": "0", "caption": caps[0], "tokens": ids[0], "caption_truncated": False},
            {"uid": "1", "caption": caps[1]},
            {"uid": "2", "caption": caps[2], "tokens": ids[2], "caption_truncated": False}]
    got, got_trunc = batch_tokens(recs, scorer)
    assert np.array_equal(got, ids) and got_trunc == trunc == [False, True, False]
    assert batch_tokens([{"caption": "x"}], scorer) is None
    with pytest.raises(ValueError, match="record 9: tokens of shape"):
        batch_tokens([{"uid": "9", "caption": "x", "tokens": np.zeros(77, np.int32)}], scorer)
