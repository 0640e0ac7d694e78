"""TextFilter PTransform on real LAION captions: counts add up and match the pure core."""
from __future__ import annotations

import collections
from dataclasses import replace
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from clipcurate.filters.config import TextFilterConfig
from clipcurate.filters.text import CaptionFilter, TextFilter
from clipcurate.testing.shared_data import SHARED_DATA

DATA = SHARED_DATA / "img2dataset-tests" / "test_10000.parquet"
N = 2000


@pytest.fixture(scope="module")
def records() -> list[dict]:
    table = pq.read_table(DATA, columns=["URL", "TEXT"]).slice(0, N)
    return [{"uid": f"{i:05d}", "url": u, "caption": t, "language": None, "language_score": None}
            for i, (u, t) in enumerate(zip(table.column("URL").to_pylist(), table.column("TEXT").to_pylist()))]


def expected(cfg: TextFilterConfig, records: list[dict]):
    """Counts, kept (uid, language) pairs and rejects (uid, reason) computed by the pure core."""
    core = CaptionFilter(cfg)
    results = [(r["uid"],) + core.check(r["caption"]) for r in records]
    counts = collections.Counter(s for _, s, _, _ in results)
    pairs = [(("filter", "in"), len(records)), (("filter", "kept"), counts.pop("ok", 0))]
    pairs += [(("filter", f"dropped:{s}"), n) for s, n in counts.items()]
    kept = [(uid, lang) for uid, s, lang, _ in results if s == "ok"]
    rejects = [(uid, s) for uid, s, _, _ in results if s != "ok"]
    return pairs, kept, rejects


def run(cfg: TextFilterConfig, records, keep_rejects: bool, options: list[str]):
    exp_counts, exp_kept, exp_rejects = expected(cfg, records)
    with beam.Pipeline(options=PipelineOptions(options)) as p:
        out = p | beam.Create(records) | TextFilter(cfg, keep_rejects=keep_rejects)
        assert_that(out["counts"] | "Sum" >> beam.CombinePerKey(sum), equal_to(exp_counts), label="Counts")
        assert_that(out["kept"] | "Kept" >> beam.Map(lambda r: (r["uid"], r["language"])),
                    equal_to(exp_kept), label="KeptOk")
        assert_that(out["rejects"] | "Rej" >> beam.Map(lambda r: (r["uid"], r["reason"]) if r["stage"] == "filter"
                                                       else None),
                    equal_to(exp_rejects if keep_rejects else []), label="RejectsOk")
    return exp_counts


def test_counts_add_up_and_match_core_in_process(records):
    counts = dict(run(TextFilterConfig(), records, True, ["--runner=FnApiRunner"]))
    dropped = {k[1]: n for k, n in counts.items() if k[1].startswith("dropped:")}
    assert counts[("filter", "in")] == N == counts[("filter", "kept")] + sum(dropped.values())
    assert {"dropped:too_short", "dropped:junk_alt", "dropped:lang"} <= set(dropped)


def test_disabled_passes_everything_and_counts_it(records):
    counts = run(replace(TextFilterConfig(), enabled=False), records[:200], False, ["--runner=FnApiRunner"])
    assert sorted(counts) == [(("filter", "in"), 200), (("filter", "kept"), 200)]


def test_multiprocess_run_matches_core(records):
    """Two worker processes: the DoFn pickles, each process loads the model in setup, same result."""
    cfg = replace(TextFilterConfig(), languages=["en", "fr", "de"])
    run(cfg, records[:600], False, ["--runner=FnApiRunner", "--direct_num_workers=2",
                                    "--direct_running_mode=multi_processing"])


def test_bad_config_fails_when_the_transform_is_built():
    with pytest.raises(ValueError, match="choose from fast, langdetect, none"):
        TextFilter(replace(TextFilterConfig(), lang_backend="fasttext"))
