"""MetaCLIP matching and balancing on real data: 10,000 LAION alt texts x WordNet 3.0 lemmas."""
from __future__ import annotations

import collections
import json
import math
import os
import tempfile
from pathlib import Path

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from clipcurate.balancing.config import BalanceConfig
from clipcurate.balancing.entries import MetadataError, load_metadata
from clipcurate.balancing.matching import Matcher, active_entries, match_reference, spacing
from clipcurate.balancing.metadata import WORDNET_DIR, WORDNET_FILES, wordnet_lemmas
from clipcurate.balancing.sampling import EntryCountFn, draw_keep, entry_probabilities, keep_probability
from clipcurate.balancing.transforms import ENTRY_COUNTS_FILE, MetaClipCurate, load_checked
from clipcurate.schemas.uid import make_uid
from clipcurate.testing.shared_data import SHARED_DATA

DATA = SHARED_DATA
LAION = DATA / "img2dataset-tests" / "test_10000.parquet"
T_SMALL = 20
SIGMAS = 4.5


def _need_wordnet():
    missing = [f for f in WORDNET_FILES if not (Path(WORDNET_DIR) / f).is_file()]
    if missing:
        pytest.skip(f"WordNet 3.0 files {missing} absent from {WORDNET_DIR}: "
                    "apt-get install -y --no-install-recommends wordnet-base")


@pytest.fixture(scope="module")
def captions():
    table = pq.read_table(LAION, columns=["URL", "TEXT"]).to_pylist()
    return [{"uid": make_uid(r["URL"], r["TEXT"]), "url": r["URL"], "caption": r["TEXT"]} for r in table]


@pytest.fixture(scope="module")
def wordnet_file(tmp_path_factory):
    _need_wordnet()
    path = tmp_path_factory.mktemp("md") / "wordnet.json"
    path.write_text(json.dumps(wordnet_lemmas()), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def entries(wordnet_file):
    return load_metadata(wordnet_file).entries


@pytest.fixture(scope="module")
def matcher(entries):
    return Matcher(entries)


def boundary_reference(caption: str, index: dict[str, int], max_len: int) -> list[int]:
    """Independent reference: every substring of the spaced caption between two spaces, looked up in a dict."""
    s = spacing(caption)
    spaces = [i for i, c in enumerate(s) if c == " "]
    found = set()
    for k, a in enumerate(spaces):
        for b in spaces[k + 1:]:
            if b - a - 1 > max_len:
                break
            if s[a + 1:b] in index:
                found.add(index[s[a + 1:b]])
    return sorted(found)


# -- matching -------------------------------------------------------------------------------

def test_semantics_case_and_punctuation():
    ents = ["cat", "Dog", "a cat", "St. Louis", "cat's", "New York", "   ", "cat", "3"]
    m = Matcher(ents)
    assert m.match("A cat.") == [0]                    # case-sensitive: "A cat" is not "a cat"
    assert m.match("a cat, a dog") == [0, 2]           # "," spaced off; "dog" is not "Dog"
    assert m.match("Dog!") == [1]
    assert m.match("(cat)") == [] and m.match("cats") == []   # other punctuation sticks to the word
    assert m.match("my cat's toy") == [4]               # apostrophe is part of the token
    assert m.match("St. Louis") == []                  # an entry holding "." can never match
    assert m.match("New\tYork") == [5] and m.match("New  York") == []  # tab -> space; double space kept
    assert m.match("version 3.5") == [8]               # "." splits numbers too (as in MetaCLIP)
    assert m.num_active == 7                           # blank entry and second "cat" are inactive


def test_matcher_equals_literal_reference_on_real_captions(captions, entries, matcher):
    for rec in captions[:20]:
        assert matcher.match(rec["caption"]) == match_reference(rec["caption"], entries), rec["caption"]


def test_matcher_equals_boundary_reference_on_all_captions(captions, entries, matcher):
    index = active_entries(entries)
    max_len = max(map(len, index))
    got = [matcher.match(r["caption"]) for r in captions]
    ref = [boundary_reference(r["caption"], index, max_len) for r in captions]
    assert got == ref
    assert sum(map(len, got)) > 10_000  # real matching happened (WordNet covers most alt texts)


# -- metadata file -----------------------------------------------------------------------------

@pytest.mark.parametrize("content,msg", [
    ("", "not valid JSON"), ("[]", "has no entries"), ('{"a": 1}', "expected a JSON array"),
    ('["ok", 3]', "item 1 is int"), ('["  ", ""]', "empty or whitespace"), ("[\"cat\"", "not valid JSON"),
])
def test_bad_metadata_files_raise_naming_the_file(tmp_path, content, msg):
    path = tmp_path / "md.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(MetadataError, match=msg) as e:
        load_metadata(str(path))
    assert str(path) in str(e.value)
    with pytest.raises(MetadataError):
        MetaClipCurate(BalanceConfig(metadata=str(path)), seed=0)


def test_metadata_blank_duplicate_and_text_format(tmp_path):
    path = tmp_path / "md.txt"
    path.write_bytes("cat\r\n \ndog\ncat\nSt. Louis\n".encode())
    md = load_metadata(str(path))
    assert md.entries == ["cat", " ", "dog", "cat", "St. Louis"]
    assert (md.num_blank, md.num_duplicate, md.num_unmatchable, md.num_active) == (1, 1, 1, 3)
    with pytest.raises(MetadataError, match="cannot read"):
        load_metadata(str(tmp_path / "absent.json"))
    (tmp_path / "latin.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(MetadataError, match="not UTF-8"):
        load_metadata(str(tmp_path / "latin.txt"))


def test_changed_metadata_is_detected(tmp_path):
    path = tmp_path / "md.json"
    path.write_text('["cat"]', encoding="utf-8")
    sha = load_metadata(str(path)).sha256
    path.write_text('["cat", "dog"]', encoding="utf-8")
    assert load_metadata(str(path)).sha256 != sha
    with pytest.raises(MetadataError, match="changed during the run"):
        load_checked(str(path), sha)


# -- sampling core ---------------------------------------------------------------------------------

def test_probabilities_and_draw_match_metaclip_formula():
    counts = np.array([0, 5, 10, 40, 1000])
    probs = entry_probabilities(counts, 10)
    assert probs.tolist() == [1.0, 1.0, 1.0, 0.25, 0.01]
    assert keep_probability([3, 4], probs) == pytest.approx(1 - 0.75 * 0.99)
    uids = [make_uid(f"http://x/{i}", "c") for i in range(20_000)]
    kept = sum(draw_keep(7, u, [3, 4], probs) for u in uids)
    p = 1 - 0.75 * 0.99
    assert abs(kept - p * len(uids)) < SIGMAS * math.sqrt(len(uids) * p * (1 - p))
    assert all(draw_keep(7, u, [1, 4], probs) for u in uids[:100])  # a tail entry always keeps
    with pytest.raises(ValueError, match="t must be > 0"):
        entry_probabilities(counts, 0)


def test_entry_count_combiner_merges_sparse_accumulators():
    fn = EntryCountFn(6)
    a = fn.add_input(fn.add_input(fn.create_accumulator(), [0, 2]), {2: 1})
    b = fn.add_input(fn.create_accumulator(), {5: 1, 2: 1})
    assert fn.extract_output(fn.merge_accumulators([a, b, fn.create_accumulator()])).tolist() == [1, 0, 3, 0, 0, 1]
    with pytest.raises(ValueError, match="out of range"):
        fn.extract_output({6: 1})


# -- the Beam transform on real data ----------------------------------------------------------------

def run_curate(records, cfg, seed, stats_dir=None, options=("--runner=FnApiRunner",)):
    """Run MetaClipCurate; return (kept records sorted by uid, summed counts, metaclip stats, rejects).

    Results travel through JSON files, so this works with worker subprocesses too."""
    with tempfile.TemporaryDirectory() as tmp:
        with beam.Pipeline(options=PipelineOptions(list(options))) as p:
            res = (p | beam.Create(records, reshuffle=False).with_output_types(dict)
                   | MetaClipCurate(cfg, seed, keep_rejects=True, stats_dir=stats_dir))
            res["counts"] = res["counts"] | beam.CombinePerKey(sum)
            for name in ("kept", "rejects", "stats", "counts"):
                (res[name] | f"Collect{name}" >> beam.combiners.ToList()
                 | f"Json{name}" >> beam.Map(json.dumps, sort_keys=True)
                 | f"Write{name}" >> beam.io.WriteToText(os.path.join(tmp, name), shard_name_template=""))
        out = {name: json.loads(Path(tmp, name).read_text()) for name in ("kept", "rejects", "stats", "counts")}
    counts = {tuple(k): n for k, n in out["counts"]}
    return sorted(out["kept"], key=lambda r: r.get("uid", "")), counts, dict(out["stats"])["metaclip"], out["rejects"]


@pytest.fixture(scope="module")
def balanced(captions, wordnet_file, tmp_path_factory):
    stats_dir = str(tmp_path_factory.mktemp("stats"))
    return run_curate(captions, BalanceConfig(metadata=wordnet_file, t=T_SMALL), seed=1, stats_dir=stats_dir), stats_dir


def test_counts_stats_and_parquet(balanced, captions, entries, matcher):
    (kept, counts, stats, rejects), stats_dir = balanced
    matched = {r["uid"]: matcher.match(r["caption"]) for r in captions}
    n_match = sum(1 for m in matched.values() if m)
    assert counts[("match", "in")] == len(captions)
    assert counts[("match", "kept")] == n_match
    assert counts[("match", "dropped:no_match")] == len(captions) - n_match
    assert counts[("balance", "in")] == n_match and counts[("balance", "dropped:balanced_out")] > 100
    assert counts[("balance", "kept")] + counts[("balance", "dropped:balanced_out")] == n_match == len(kept) + sum(
        r["reason"] == "balanced_out" for r in rejects)
    assert all(r["matched"] == matched[r["uid"]] for r in kept)
    before = collections.Counter(e for m in matched.values() for e in m)
    after = collections.Counter(e for r in kept for e in r["matched"])
    table = pq.read_table(Path(stats_dir) / ENTRY_COUNTS_FILE).to_pydict()
    assert table["entry_id"] == list(range(len(entries))) and table["entry"] == entries
    assert table["count_before"] == [before.get(i, 0) for i in range(len(entries))]
    assert table["count_after"] == [after.get(i, 0) for i in range(len(entries))]
    head = [i for i, c in before.items() if c > T_SMALL]
    assert stats["head_entries"] == len(head) > 10
    assert stats["entries_matched"] == len(before)
    assert stats["unmatched_entries"] == len(entries) - len(before)
    assert stats["head_share_before"] == pytest.approx(sum(before[i] for i in head) / sum(before.values()))
    assert stats["head_share_after"] < stats["head_share_before"]
    assert stats["sha256"] == load_metadata(stats["metadata"]).sha256 and stats["t"] == T_SMALL


def test_tail_kept_and_head_capped_binomially(balanced, captions, matcher):
    (kept, _, _, _), _ = balanced
    kept_uids = {r["uid"] for r in kept}
    matched = {r["uid"]: matcher.match(r["caption"]) for r in captions}
    before = collections.Counter(e for m in matched.values() for e in m)
    tail_pairs = [u for u, m in matched.items() if any(before[e] <= T_SMALL for e in m)]
    assert tail_pairs and all(u in kept_uids for u in tail_pairs)
    for e in (e for e, c in before.items() if c > T_SMALL):
        single = [u for u, m in matched.items() if m == [e]]  # kept only through e's own draw
        p = T_SMALL / before[e]
        k = sum(u in kept_uids for u in single)
        assert abs(k - p * len(single)) <= SIGMAS * math.sqrt(len(single) * p * (1 - p)) + 1, (e, k, len(single))
        probs = [1 - math.prod(1 - min(1, T_SMALL / before[x]) for x in m) for m in matched.values() if e in m]
        after = sum(1 for r in kept if e in r["matched"])
        mean, var = sum(probs), sum(q * (1 - q) for q in probs)
        assert mean >= T_SMALL - 1e-9
        assert abs(after - mean) <= SIGMAS * math.sqrt(var) + 1, (e, after, mean)


def test_other_seed_other_sample_same_distribution(balanced, captions, wordnet_file, matcher):
    (kept1, _, _, _), _ = balanced
    kept2, _, _, _ = run_curate(captions, BalanceConfig(metadata=wordnet_file, t=T_SMALL), seed=2)
    u1, u2 = {r["uid"] for r in kept1}, {r["uid"] for r in kept2}
    assert u1 != u2 and len(u1 & u2) > 0.5 * len(u1)
    matched = [matcher.match(r["caption"]) for r in captions]
    before = collections.Counter(e for m in matched for e in m)
    probs = [1 - math.prod(1 - min(1, T_SMALL / before[x]) for x in m) for m in matched if m]
    mean, sd = sum(probs), math.sqrt(sum(q * (1 - q) for q in probs))
    for kept in (u1, u2):
        assert abs(len(kept) - mean) <= SIGMAS * sd + 1
    after1 = collections.Counter(e for r in kept1 for e in r["matched"])
    after2 = collections.Counter(e for r in kept2 for e in r["matched"])
    assert after1 != after2
    for e in (e for e, c in before.items() if c > 5 * T_SMALL):  # head sizes agree within binomial noise
        assert abs(after1[e] - after2[e]) <= SIGMAS * math.sqrt(2 * after1[e]) + 2


def test_same_output_for_two_runs_and_two_workers(balanced, captions, wordnet_file):
    (kept1, counts1, stats1, _), _ = balanced
    cfg = BalanceConfig(metadata=wordnet_file, t=T_SMALL)
    again = run_curate(captions, cfg, seed=1)
    multi = run_curate(captions, cfg, seed=1, options=("--runner=FnApiRunner", "--direct_num_workers=2",
                                                        "--direct_running_mode=multi_processing"))
    stats1 = {k: v for k, v in stats1.items() if k != "entry_counts_parquet"}
    for kept, counts, stats, _ in (again, multi):
        assert kept == kept1 and counts == counts1 and stats == stats1


def test_bad_records_counted_and_pass_through(tmp_path):
    path = tmp_path / "md.json"
    path.write_text(json.dumps(["cat", "red fox", "cat", " "]), encoding="utf-8")
    recs = [{"uid": "a", "caption": "a red fox."}, {"uid": "b", "caption": None}, {"uid": "c"},
            {"uid": "d", "caption": "   "}, {"uid": "e", "caption": "a dog"}, {"caption": "cat"}]
    kept, counts, stats, rejects = run_curate(recs, BalanceConfig(metadata=str(path), t=5), seed=0)
    assert [r["uid"] for r in kept] == ["a"] and kept[0]["matched"] == [1]
    assert counts[("match", "dropped:missing_caption")] == 3 and counts[("match", "dropped:no_match")] == 1
    assert counts[("balance", "dropped:malformed_row")] == 1
    assert {(r["stage"], r["reason"]) for r in rejects} == {("match", "missing_caption"), ("match", "no_match"),
                                                            ("balance", "malformed_row")}
    assert (stats["duplicate_entries"], stats["blank_entries"], stats["active_entries"]) == (1, 1, 2)
    kept, counts, _, _ = run_curate(recs, BalanceConfig(metadata=str(path), t=5, drop_unmatched=False), seed=0)
    assert [(r["uid"], r["matched"]) for r in kept] == [("a", [1]), ("e", [])]
    assert ("match", "dropped:no_match") not in counts and counts[("balance", "kept")] == 2
    kept, counts, stats, rejects = run_curate(recs, BalanceConfig(enabled=False, metadata=str(path)), seed=0)
    assert len(kept) == len(recs) and counts[("balance", "kept")] == counts[("match", "in")] == len(recs)
    assert stats["enabled"] is False and rejects == []
