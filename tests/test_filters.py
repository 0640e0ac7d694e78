"""Text filter core: length bounds, junk alt text, language filter, config errors (real LAION captions)."""
from __future__ import annotations

import collections
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from clipcurate.filters.config import TextFilterConfig
from clipcurate.filters.text import CaptionFilter, is_file_name, is_junk_alt
from clipcurate.schemas.status import is_known
from clipcurate.testing.shared_data import SHARED_DATA

DATA = SHARED_DATA / "img2dataset-tests" / "test_10000.parquet"
PLAIN = TextFilterConfig(min_chars=0, max_chars=10_000, min_words=0, max_words=10_000, languages=[],
                         lang_backend="none", junk_filter=False)


@pytest.fixture(scope="module")
def captions() -> list[str]:
    return pq.read_table(DATA, columns=["TEXT"]).column("TEXT").to_pylist()


def status(cfg: TextFilterConfig, caption) -> str:
    return CaptionFilter(cfg).check(caption)[0]


def test_char_bounds_are_inclusive_on_stripped_text():
    cfg = replace(PLAIN, min_chars=5, max_chars=10)
    assert status(cfg, "ab c") == "too_short"
    assert status(cfg, "  ab cd  ") == "ok"          # 5 chars once stripped
    assert status(cfg, "abcde fghi") == "ok"         # 10
    assert status(cfg, "abcde fghij") == "too_long"  # 11


def test_word_bounds_are_inclusive():
    cfg = replace(PLAIN, min_words=2, max_words=4)
    assert status(cfg, "Wordpress") == "too_short"
    assert status(cfg, "Oblong Box") == "ok"
    assert status(cfg, "one two\tthree\nfour") == "ok"
    assert status(cfg, "one two three four five") == "too_long"


def test_missing_or_odd_caption_is_a_counted_drop_not_a_crash():
    cfg = replace(PLAIN, min_chars=1)
    assert status(cfg, None) == "too_short"
    assert status(cfg, "   ") == "too_short"
    assert status(replace(PLAIN, min_words=1), 12345) == "ok"


@pytest.mark.parametrize("text", [
    "IMG_1234.jpg", "DSC00012", "DSCN0042", "photo.png", "image", "Image", "IMG_20200101_123456",
    "PXL_20210101_123456789", "WhatsApp Image 2020-01-01 at 10.00.00", "Untitled-1", "P1010001",
    "http://example.com/a", "www.example.com/gallery", "12/05/2019", "Image 3 of 12", "click to enlarge",
    "n/a", "!!!", "Fox Crochet Hat.jpg", "shinseki.JPG", "0.32893747091293335", "product image 2",
])
def test_junk_alt_examples(text):
    assert is_junk_alt(text)


@pytest.mark.parametrize("text", [
    "a photo of a dog", "Nike logo", "Photo Booth", "Image 5 of Winchester .22 Long Rifle (LR) Ammo",
    "Google Image Result for http://www.artexpress.ws/upload/x.jpg x", "Pony Love.jpg Canvas Lunch Bag",
    "日本の風景", "Le chat est sur la table", "Node.js tutorial",
])
def test_not_junk_examples(text):
    assert not is_junk_alt(text)


def test_junk_on_real_captions_is_rare_and_includes_known_rows(captions):
    junk = [c for c in captions if is_junk_alt(c)]
    # real alt texts from the file that are a URL, a number, a file name
    for known in ("http://www.yarnspirations.com/patterns/do-the-twist-hat.html", "0.32893747091293335",
                  "shinseki.JPG", "Styling machine.png"):
        assert known in captions and known in junk
    for kept in ("Image 5 of Winchester .22 Long Rifle (LR) Ammo", "Tavern Brawl by velinov"):
        assert kept in captions and kept not in junk
    assert 0 < len(junk) < 0.02 * len(captions)
    assert all(is_file_name(c.strip()) or "/" in c or not any(ch.isalpha() for ch in c)
               for c in junk if len(c.split()) > 1)


def test_checks_run_cheapest_first():
    cfg = replace(PLAIN, min_words=2, junk_filter=True, lang_backend="fast", languages=["fr"])
    core = CaptionFilter(cfg)
    assert core.check("IMG_1234.jpg") == ("too_short", None, None)   # length before junk
    assert core.check("photo 3.jpg") == ("junk_alt", None, None)      # junk before language
    s, lang, score = core.check("Tavern Brawl by velinov")
    assert (s, lang) == ("lang", "en") and 0 < score <= 1


def test_language_filter_and_score_threshold():
    core = CaptionFilter(replace(PLAIN, lang_backend="fast", languages=["fr", "de"]))
    assert core.check("Le funiculaire de Lookout Mountain à Chattanooga")[:2] == ("ok", "fr")
    assert core.check("Hotel Kubrat an der Spree Berlin")[:2] == ("ok", "de")
    assert core.check("Tavern Brawl by velinov")[:2] == ("lang", "en")
    any_lang = CaptionFilter(replace(PLAIN, lang_backend="fast", languages=[]))
    s, lang, score = any_lang.check("Pharoahe Monch")
    assert s == "ok" and lang is not None
    strict = CaptionFilter(replace(PLAIN, lang_backend="fast", languages=[], min_lang_score=min(1.0, score + 0.01)))
    assert strict.check("Pharoahe Monch")[0] == "lang"


def test_apply_sets_language_fields_on_a_copy():
    core = CaptionFilter(replace(PLAIN, lang_backend="fast", languages=["en"]))
    rec = {"uid": "u", "caption": "Tavern Brawl by velinov", "language": None}
    s, out = core.apply(rec)
    assert s == "ok" and out["language"] == "en" and 0.5 < out["language_score"] <= 1
    assert rec["language"] is None and "language_score" not in rec
    rec = {"caption": "x"}
    assert CaptionFilter(PLAIN).apply(rec) == ("ok", rec)  # no language backend: record untouched


def test_disabled_keeps_everything_without_loading_a_model():
    core = CaptionFilter(replace(TextFilterConfig(), enabled=False))
    assert core.check("") == ("ok", None, None)
    assert core._detect is None


def test_default_config_on_real_captions(captions):
    core = CaptionFilter(TextFilterConfig())
    counts = collections.Counter(core.check(c)[0] for c in captions[:3000])
    assert all(is_known(s) for s in counts)
    assert sum(counts.values()) == 3000
    # mostly English alt text: most is kept; each filter fires on some real rows
    assert counts["ok"] > 0.8 * 3000
    assert counts["too_short"] > 0 and counts["junk_alt"] > 0 and counts["lang"] > 0


@pytest.mark.parametrize("kwargs, words", [
    (dict(min_chars=10, max_chars=5), ["min_chars=10", "max_chars=5"]),
    (dict(min_words=3, max_words=2), ["min_words=3", "max_words=2"]),
    (dict(min_chars=-1), ["min_chars=-1"]),
    (dict(lang_backend="cld3"), ["'cld3'", "fast, langdetect, none"]),
    (dict(min_lang_score=1.5), ["min_lang_score=1.5"]),
    (dict(min_lang_score="high"), ["min_lang_score='high'"]),
    (dict(languages="en"), ["list of codes"]),
    (dict(languages=["eng"]), ["['eng']", "en"]),
    (dict(lang_backend="none"), ["['en']", "fast, langdetect"]),
])
def test_bad_config_fails_at_construction_with_values(kwargs, words):
    with pytest.raises(ValueError) as err:
        CaptionFilter(replace(TextFilterConfig(), **kwargs))
    assert all(w in str(err.value) for w in words), str(err.value)


def test_language_codes_are_normalised_in_config():
    core = CaptionFilter(replace(PLAIN, lang_backend="langdetect", languages=["ZH-cn", "en"]))
    assert core.languages == {"zh", "en"}
