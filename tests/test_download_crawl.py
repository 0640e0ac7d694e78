"""A real crawl's traps on the hostile web: stalling DNS, URL spellings of one host, a huge
robots.txt, bytes after a gzip member, X-Robots-Tag none (issue #12, downloader part)."""
import asyncio
import time

import pytest

from clipcurate.download.fetch import Fetcher, host_key, origin_key
from clipcurate.download.robots import RobotsCache, RobotsPolicy, header_directives, parse_robots
from clipcurate.download.runner import DownloadRunner
from clipcurate.testing.hostile_web import HostileWeb, big_robots
from yarl import URL

from conftest import IMAGES


def run_fetches(cfg, urls, **kw):
    async def go():
        async with Fetcher(cfg, **kw) as f:
            return await asyncio.gather(*[f.fetch(u) for u in urls]), f
    return asyncio.run(go())


@pytest.fixture(scope="module")
def dns_web():
    """A hostile web that also answers DNS on 127.0.0.1 (names with ``dnsstall-<ms>`` stall)."""
    if not IMAGES.is_dir():
        pytest.skip(f"test images not found at {IMAGES}")
    with HostileWeb([IMAGES], dns=True) as web:
        yield web


def dns_config(web, loopback_download_config, **kw):
    return loopback_download_config(host_overrides=[], dns_servers=[f"127.0.0.1:{web.dns_port}"], **kw)


def test_stalled_resolver_costs_only_its_own_hosts_and_stays_inside_the_deadline(dns_web, loopback_download_config):
    cfg = dns_config(dns_web, loopback_download_config, timeout=1.0, retries=0, dns_timeout=5.0,
                     respect_robots=False)
    img = dns_web.image_names()[0]
    stalled = [f"http://dnsstall-3000.s{k}.test:{dns_web.port}/img/{img}?i={i}" for k in range(12) for i in range(2)]
    healthy = [f"http://h{k % 5}.test:{dns_web.port}/img/{img}?i={k}" for k in range(20)]
    t = time.monotonic()
    results, f = run_fetches(cfg, stalled + healthy)
    elapsed = time.monotonic() - t
    assert [r.status for r in results] == ["dns_timeout"] * 24 + ["ok"] * 20, [(r.url, r.error) for r in results]
    assert elapsed < 3.0                                     # nobody waited for the 3 s lookups
    assert f.max_request_seconds <= cfg.timeout + 0.25 and f.stats["over_deadline"] == 0
    assert f.stats["dns_timeouts"] == 24
    assert f.resolver.stats["dns_lookups"] == 12 + 5         # one shared lookup per host
    assert dns_web.dns_queries["dnsstall-3000.s0.test"] >= 1 and dns_web.dns_queries["h0.test"] >= 1  # real DNS


def test_dns_timeout_is_negative_cached_and_never_written_to_the_fetch_cache(dns_web, loopback_download_config, tmp_path):
    cfg = dns_config(dns_web, loopback_download_config, timeout=1.0, retries=0, dns_timeout=0.3,
                     dns_negative_ttl=60, respect_robots=False, cache_dir=str(tmp_path), image_processes=0)
    img = dns_web.image_names()[0]
    stalled = f"http://dnsstall-2000.neg.test:{dns_web.port}/img/{img}"
    records = [{"uid": "aa01", "url": stalled, "caption": "a"},
               {"uid": "bb02", "url": f"http://ok1.test:{dns_web.port}/img/{img}", "caption": "b"}]
    with DownloadRunner(cfg) as runner:
        first = runner.run(records[:1])
        second = runner.run(records)
        stats = runner.stats()
    assert [s for s, _ in first] == ["dns_timeout"] and [s for s, _ in second] == ["dns_timeout", "ok"]
    assert stats["dns_lookup_timeouts"] == 1 and stats["dns_negative_hits"] == 1 and stats["dns_timeouts"] == 2
    cached = sorted(p.name for p in tmp_path.glob("*/*.fetch"))
    assert cached == ["bb02.fetch"]  # the resolver hiccup is refetched next run


def test_private_answers_from_real_dns_are_refused(dns_web, loopback_download_config):
    cfg = dns_config(dns_web, loopback_download_config, retries=0)
    results, _ = run_fetches(cfg, [f"http://private.test:{dns_web.port}/x", f"http://nx.example:{dns_web.port}/x"])
    assert [r.status for r in results] == ["private_address", "connection_error"]


def test_every_spelling_of_a_host_shares_its_limits_and_robots(hostile_web, loopback_download_config):
    img = hostile_web.image_names()[0]
    port = hostile_web.port
    spellings = ["http://u{i}@spell.test:{p}", "http://SPELL.TEST:{p}", "http://spell.test.:{p}",
                 "http://u{i}:pw@Spell.Test.:{p}", "http://spell.test:{p}"]
    urls = [spellings[i % 5].format(i=i, p=port) + f"/img/{img}?latency_ms=150&i={i}" for i in range(30)]
    cfg = loopback_download_config(host_overrides=["spell.test=127.0.0.1"], per_host_concurrency=2,
                                   per_host_rate=10, per_host_burst=2, retries=0, timeout=3.0)
    results, f = run_fetches(cfg, urls)
    assert [r.status for r in results] == ["ok"] * 30
    seen = hostile_web.host_report()["spell.test"]
    assert seen["requests"] == 31 and seen["robots_fetches"] == 1  # 30 images + one robots.txt
    assert seen["max_in_flight"] <= 2
    # token bucket: burst + rate x 1 s (+2: sends bunch by up to 0.2 s when this loop wakes late);
    # keyed by the raw authority, the 30 URLs all arrived within one second
    assert seen["max_in_window"] <= 2 + 10 + 2
    assert {host_key(URL(u)) for u in urls} == {"spell.test"}
    assert origin_key(URL("HTTPS://u@Spell.Test.:443/a")) == "https://spell.test"
    assert origin_key(URL("http://[::1]:8080/")) == "http://[::1]:8080"


def test_huge_robots_txt_is_parsed_off_the_loop_and_matched_fast(hostile_web, loopback_download_config):
    img = hostile_web.image_names()[0]
    base = f"http://bigrobots.test:{hostile_web.port}"
    urls = [f"{base}/img/{img}?i={i}" for i in range(100)]
    urls += [f"{base}/private/{img}", f"{base}/img/archive-100/x.php", f"{base}/img/archive-100/x.php5"]
    cfg = loopback_download_config(host_overrides=["bigrobots.test=127.0.0.1"], per_host_concurrency=32,
                                   concurrency=100, retries=0, timeout=1.5)
    results, f = run_fetches(cfg, urls)
    assert [r.status for r in results] == ["ok"] * 100 + ["robots", "robots", "http_404"], [r.error for r in results[-3:]]
    assert f.stats["over_deadline"] == 0 and f.max_request_seconds <= cfg.timeout + 0.25
    assert f.robots.fetches == 1


def test_robots_rules_follow_rfc9309():
    body = b"""# comment
User-agent: otherbot
Disallow: /

User-agent: *
Disallow: /private/
Disallow: /*.gif$
Allow: /private/ok
Disallow: /a%3cd
Disallow: /dup
Allow: /dup

User-agent: ClipCurate
User-agent: somebody
Disallow: /mine/
Allow: /mine/*.jpg$
"""
    star = parse_robots(body, "anybot")
    expect = {"/": True, "/private/x": False, "/private/ok/x": True, "/x/y.gif": False, "/x/y.gif?q": True,
              "/a<d": False, "/a%3Cd": False, "/dup": True, "/mine/x": True}
    assert {p: star.allowed(p) for p in expect} == expect
    mine = parse_robots(body, "clipcurate")  # our own group replaces '*' entirely
    assert [mine.allowed(p) for p in ["/private/x", "/mine/a", "/mine/a.jpg", "/mine/a.jpgx"]] == [True, False, True, False]
    assert RobotsPolicy(parse_robots(b"User-agent: *\nDisallow: /\n", "x"), True).allowed("/robots.txt")
    big = parse_robots(big_robots(), "clipcurate")
    assert len(big_robots()) < 500_000 and big.allowed("/img/a.jpg") and not big.allowed("/private/a.jpg")
    assert not big.allowed("/catalogue/section-5/item-39595/x") and big.allowed("/catalogue/section-5/")


def test_robots_over_budget_disallows_and_cache_evicts_by_bytes():
    from clipcurate.download.robots import policy_from_response
    slow = policy_from_response(200, big_robots(), None, "x", budget=0.0)
    assert not slow.allowed("/img/a.jpg") and "longer than" in slow.reason
    fetched = []

    async def fetch(url):
        fetched.append(url)
        return 200, b"User-agent: *\n" + b"".join(b"Disallow: /p%d/\n" % i for i in range(200)), None

    async def go():
        cache = RobotsCache(fetch, "x", max_bytes=60_000)
        for origin in ["http://a", "http://b", "http://a", "http://c", "http://a", "http://b"]:
            await cache.policy(origin)
        return cache
    cache = asyncio.run(go())
    assert cache.evictions >= 1 and cache.nbytes <= 60_000
    assert fetched.count("http://a/robots.txt") == 1  # recently used: kept
    assert fetched.count("http://b/robots.txt") == 2  # least recently used: evicted, fetched again


def test_bytes_after_a_gzip_member_count_against_the_cap(hostile_web, loopback_download_config):
    img = hostile_web.image_names()[0]
    cfg = loopback_download_config(retries=0, timeout=3.0)
    t = time.monotonic()
    results, _ = run_fetches(cfg, [hostile_web.url(f"/gzip-trailing/{img}"),
                                   hostile_web.url(f"/gzip-trailing/{img}?trailing=100")])
    assert [r.status for r in results] == ["too_large", "ok"]
    assert time.monotonic() - t < cfg.timeout  # ended by the cap, not by the deadline
    assert results[1].body == hostile_web.files[img].read_bytes()


def test_x_robots_tag_none_and_noimageindex_are_robots_directives(hostile_web, loopback_download_config):
    img = hostile_web.image_names()[0]
    values = ["none", "noimageindex", "clipcurate: none", "otherbot: none", "all", "nofollow"]
    urls = [hostile_web.url(f"/img/{img}?xrobots={v.replace(' ', '%20')}&v={i}") for i, v in enumerate(values)]
    results, _ = run_fetches(loopback_download_config(), urls)
    assert [r.status for r in results] == ["robots", "robots", "robots", "ok", "ok", "ok"]
    assert header_directives(["none"], "x") == {"none", "noindex", "nofollow"}


def test_network_guard_covers_c_ares(network_guard):
    aiodns = pytest.importorskip("aiodns")
    before = len(network_guard.violations)

    async def go():
        return await aiodns.DNSResolver().getaddrinfo("example.org")
    with pytest.raises(ConnectionRefusedError):
        asyncio.run(go())
    assert len(network_guard.violations) == before + 1
    del network_guard.violations[before:]
