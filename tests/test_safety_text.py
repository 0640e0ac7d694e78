"""Text-first safety: URL/domain/prefix blocklists and opt-out lists on real LAION URLs, the
caption toxicity score, the Beam stage's counts and the manifest's list identities."""
from __future__ import annotations

import collections
import hashlib
import json
from pathlib import Path
from urllib.parse import urlsplit

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.util import assert_that, equal_to

from clipcurate.config import RunConfig
from clipcurate.pipelines.curate import run
from clipcurate.safety import SafetyConfig, SafetyText, TextSafety, build_rules
from clipcurate.safety.lists import read_list
from clipcurate.safety.urls import registered_domain
from clipcurate.schemas.uid import make_uid
from clipcurate.testing.shared_data import SHARED_DATA

DATA = SHARED_DATA / "img2dataset-tests" / "test_1000.parquet"


@pytest.fixture(scope="module")
def rows():
    return pq.read_table(DATA, columns=["URL", "TEXT"]).to_pylist()


def _host(url):
    return (urlsplit(url).hostname or "").lower()


def test_domain_rule_blocks_the_host_and_its_subdomains_only(rows):
    hosts = collections.Counter(".".join(_host(r["URL"]).split(".")[-2:]) for r in rows)
    domain, n = hosts.most_common(1)[0]
    assert n >= 5  # a domain that many real URLs share
    rules = build_rules([("org", [domain])])
    blocked = [r["URL"] for r in rows if rules.match(r["URL"])]
    expected = [r["URL"] for r in rows if _host(r["URL"]) == domain or _host(r["URL"]).endswith("." + domain)]
    assert blocked == expected and len(blocked) == n
    # a look-alike is not a subdomain
    assert rules.match(f"http://bad{domain}/x.jpg") is None
    assert rules.match(f"https://CDN.{domain.upper()}./x.jpg") == ("org", domain)


def test_exact_and_prefix_rules_on_real_urls(rows):
    urls = [r["URL"] for r in rows]
    picked = urls[10:13]
    lines = list(picked)
    # a prefix: the first real URL with a path of >= 2 segments, cut after its first segment
    deep = next(u for u in urls[100:] if urlsplit(u).path.count("/") >= 3)
    p = urlsplit(deep)
    prefix = f"{p.scheme}://{p.netloc}/{p.path.split('/')[1]}/"
    lines.append(prefix + "*")
    rules = build_rules([("exact", lines)])
    hits = {u for u in urls if rules.match(u)}
    expected = set(picked) | {u for u in urls if urlsplit(u).hostname == p.hostname
                              and urlsplit(u).path.startswith(f"/{p.path.split('/')[1]}/")}
    assert hits == expected and deep in hits
    # scheme, host case and fragment do not matter; path case and query do
    u = urlsplit(picked[0])
    other = "https" if u.scheme == "http" else "http"
    assert rules.match(f"{other}://{u.netloc.upper()}{u.path}#frag") is not None
    assert rules.match(f"{u.scheme}://{u.netloc}{u.path}?extra=1") is None
    assert rules.match(f"{u.scheme}://{u.netloc}{u.path.upper()}") is None or u.path == u.path.upper()


def test_registered_domain_rule_uses_the_public_suffix_list(rows):
    # a real host with a subdomain under a multi-label suffix or not: blocks its whole registered domain
    url = next(r["URL"] for r in rows if _host(r["URL"]).count(".") >= 2)
    host = _host(url)
    reg = registered_domain(host)
    assert host.endswith(reg) and reg != host
    rules = build_rules([("reg", [f"registered:{host}"])])
    assert rules.match(f"http://other.{reg}/a.png") == ("reg", f"registered:{host}")
    assert rules.match(url) is not None
    assert registered_domain("x.a.blogspot.com") == "a.blogspot.com"  # private suffixes count
    assert registered_domain("news.bbc.co.uk") == "bbc.co.uk"
    assert build_rules([("r", ["registered:a.blogspot.com"])]).match("http://b.blogspot.com/x") is None


def test_bad_rules_and_urls(tmp_path):
    with pytest.raises(ValueError, match="'bad'.*not a host"):
        build_rules([("bad", ["domain:exa mple.com/x"])])
    rules = build_rules([("l", ["example.com"])])
    for u in (None, "", "not a url", "http://[::1/x", "mailto:a@example.com"):
        assert rules.match(u) is None
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_list(str(tmp_path / "nope.txt"), "url_blocklist")
    with pytest.raises(ValueError, match="two lists named 'x'"):
        TextSafety(SafetyConfig(url_blocklists=[f"x={tmp_path}/a", f"x={tmp_path}/b"]))


def _write(path: Path, lines: list[str]) -> str:
    path.write_text("# comment line\n" + "\n".join(lines) + "\n\n", encoding="utf-8")
    return str(path)


def test_core_blocklist_wins_over_optout_and_toxic_scores(tmp_path, rows):
    recs = [{"uid": make_uid(r["URL"], r["TEXT"]), "url": r["URL"], "caption": r["TEXT"]} for r in rows]
    d1, d2 = _host(rows[0]["URL"]), _host(rows[1]["URL"])
    block = _write(tmp_path / "block.txt", [d1 + "  # inline note"])
    opt = _write(tmp_path / "optout.txt", [d1, d2])
    core = TextSafety(SafetyConfig(url_blocklists=[f"csam={block}"], optout_lists=[opt], toxic_threshold=0.9))
    out = core.decide_batch(recs + [{"uid": "t", "url": "http://example.org/1.jpg", "caption": "fuck you, you stupid idiot"}])
    statuses = collections.Counter(s for s, _ in out)
    n1 = sum(_host(r["URL"]) == d1 for r in rows)
    n2 = sum(_host(r["URL"]) == d2 for r in rows)
    assert statuses["blocklisted"] == n1 and statuses["opted_out"] == n2
    assert statuses["toxic_text"] >= 1 and out[-1][0] == "toxic_text"
    first = out[0][1]
    assert (first["safety_list"], first["safety_match"]) == ("csam", d1)
    assert out[1][1]["safety_list"] == "optout.txt"
    scores = [r["toxic_score"] for s, r in out if s == "ok"]
    assert len(scores) == statuses["ok"] and max(scores) < 0.9
    assert sum(scores) / len(scores) < 0.2  # real product alt texts are mostly harmless
    ids = {i["name"]: i for i in core.stats()["lists"]}
    assert ids["csam"]["sha256"] == hashlib.sha256(Path(block).read_bytes()).hexdigest()
    assert ids["csam"]["file"] == "block.txt" and ids["csam"]["entries"] == 1 and ids["optout.txt"]["entries"] == 2
    assert core.stats()["models"][0]["name"] == "alt-profanity-check"


def test_beam_stage_counts_match_the_core(tmp_path, rows):
    recs = [{"uid": make_uid(r["URL"], r["TEXT"]), "url": r["URL"], "caption": r["TEXT"]} for r in rows]
    doms = sorted({_host(r["URL"]) for r in rows})[:40]
    cfg = SafetyConfig(url_blocklists=[_write(tmp_path / "b.txt", doms[:20])],
                       optout_lists=[_write(tmp_path / "o.txt", doms[20:])], toxic_text=True)
    expected = collections.Counter(s for s, _ in TextSafety(cfg).decide_batch(recs))
    with beam.Pipeline(runner="FnApiRunner") as p:
        out = p | beam.Create(recs) | SafetyText(cfg, keep_rejects=True)
        counts = out["counts"] | beam.CombinePerKey(sum)
        want = [(("safety_text", "in"), len(recs)), (("safety_text", "kept"), expected["ok"])] + [
            (("safety_text", f"dropped:{k}"), v) for k, v in expected.items() if k != "ok"]
        assert_that(counts, equal_to(want), label="counts")
        assert_that(out["rejects"] | beam.Map(lambda r: (r["reason"], r["safety_list"])) | beam.combiners.Count.PerElement(),
                    equal_to([(("blocklisted", "b.txt"), expected["blocklisted"]),
                              (("opted_out", "o.txt"), expected["opted_out"])]), label="rejects")
        assert_that(out["kept"] | beam.Map(lambda r: isinstance(r.get("toxic_score"), float)) | beam.Distinct(),
                    equal_to([True]), label="scored")
    assert expected["blocklisted"] > 0 and expected["opted_out"] > 0
    assert expected["ok"] + expected["blocklisted"] + expected["opted_out"] == len(recs)


def test_run_with_set_safety_text_only(tmp_path, rows):
    doms = sorted({_host(r["URL"]) for r in rows})[:30]
    block = _write(tmp_path / "block.txt", doms)
    cfg = RunConfig(until="safety_text").with_overrides(
        [f"safety.url_blocklists=[\"org={block}\"]", "safety.toxic_text=true", "sink.keep_rejects=true"])
    cfg.ingest.inputs = [str(DATA)]
    cfg.sink.output = str(tmp_path / "out")
    manifest = run(cfg, [], report=False)
    st = manifest["stages"]["safety_text"]
    assert list(manifest["stages"]) == ["ingest", "filter", "safety_text", "write"]
    assert st["balanced"] and st["dropped"]["blocklisted"] > 0
    assert st["in"] == manifest["stages"]["filter"]["kept"]
    lists = manifest["stats"]["safety_text"]["lists"]
    assert lists == [{"name": "org", "kind": "url_blocklist", "file": "block.txt", "bytes": Path(block).stat().st_size,
                      "sha256": hashlib.sha256(Path(block).read_bytes()).hexdigest(), "entries": 30}]
    assert str(tmp_path) not in json.dumps(manifest["stats"])
    kept = [r for f in (tmp_path / "out" / "until_safety_text").glob("*.parquet") for r in pq.read_table(f).to_pylist()]
    assert len(kept) == st["kept"] and all(r["toxic_score"] is not None for r in kept)
    rej = [r for f in (tmp_path / "out" / "rejects").glob("*.parquet") for r in pq.read_table(f).to_pylist()]
    rej = [r for r in rej if r["stage"] == "safety_text"]
    assert len(rej) == st["dropped"]["blocklisted"] and {r["safety_list"] for r in rej} == {"org"}
    assert all(_host(r["url"]) in doms for r in rej)


def test_idna_hosts_ports_and_comments(tmp_path):
    rules = build_rules([("l", ["bücher.de", "prefix:http://host.example:8080/a/", "url:https://e.com/x?q=1"])])
    assert rules.match("http://www.xn--bcher-kva.de/img.jpg") == ("l", "bücher.de")
    assert rules.match("http://WWW.BÜCHER.DE/img.jpg") == ("l", "bücher.de")
    assert rules.match("http://host.example:8080/a/b.jpg") is not None
    assert rules.match("http://host.example/a/b.jpg") is None  # another port, another origin
    assert rules.match("http://e.com:80/x?q=1") is not None and rules.match("http://e.com/x?q=2") is None
    path = tmp_path / "l.txt"
    path.write_bytes("\ufeff# header\nexample.com   # trailing note\n\n  # indented comment\nhttps://a.org/p#frag\n".encode())
    name, lines, ident = read_list(str(path), "optout")
    assert (name, lines, ident["entries"], ident["file"]) == ("l.txt", ["example.com", "https://a.org/p#frag"], 2, "l.txt")
    path.write_bytes(b"\xff\xfe bad")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_list(f"bad={path}", "optout")
