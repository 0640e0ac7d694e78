"""The fetch core against the hostile loopback web: statuses, deadlines, guards, retries."""
import asyncio
import socket
import time

import pytest

from clipcurate.download.fetch import Fetcher, check_url, parse_retry_after
from clipcurate.download.guard import address_allowed
from clipcurate.download.limits import TokenBucket


def run_fetches(cfg, urls, **kw):
    async def go():
        async with Fetcher(cfg, **kw) as f:
            results = await asyncio.gather(*[f.fetch(u) for u in urls])
            return results, f
    return asyncio.run(go())


HOSTILE = [  # path, expected status
    ("/hang", "timeout"), ("/drip", "timeout"), ("/status/404", "http_404"), ("/status/500", "http_500"),
    ("/status/429?retry_after=0", "http_429"), ("/loop/a", "redirect_loop"), ("/chain/9", "redirect_loop"),
    ("/redirect?to=http://10.0.0.1/x.jpg", "private_address"),
    ("/redirect?to=http://[fd00::1]/x.jpg", "private_address"),
    ("/redirect?to=http://169.254.169.254/latest/meta-data/", "private_address"),
    ("/redirect?to=http://[::ffff:192.168.0.1]/", "private_address"),
    ("/redirect?to=ftp://example.org/x", "bad_scheme"),
    ("/gzip-bomb", "too_large"), ("/huge-length", "too_large"), ("/endless", "too_large"),
    ("/private/x.jpg", "robots"), ("/noai/IMG", "noai"),
    ("/img/IMG", "ok"), ("/gzip/IMG", "ok"), ("/chain/3", "ok"), ("/flaky/t1?fail=1", "ok"),
]


def test_hostile_endpoints_each_get_their_status_within_the_deadline(hostile_web, loopback_download_config):
    cfg = loopback_download_config(timeout=1.0, retries=1)
    img = hostile_web.image_names()[0]
    urls = [hostile_web.url(p.replace("IMG", img)) for p, _ in HOSTILE]
    t = time.monotonic()
    results, f = run_fetches(cfg, urls)
    elapsed = time.monotonic() - t
    assert [r.status for r in results] == [s for _, s in HOSTILE], [(r.url, r.error) for r in results]
    assert f.max_request_seconds <= cfg.timeout + 0.2       # no request outlived its deadline
    assert elapsed < (cfg.retries + 1) * cfg.timeout + 1.5    # run bounded by deadline x attempts
    by_path = dict(zip([p for p, _ in HOSTILE], results))
    assert by_path["/noai/IMG"].body is None and by_path["/img/IMG"].body == (hostile_web.files[img]).read_bytes()
    assert by_path["/flaky/t1?fail=1"].attempts == 2 and by_path["/status/404"].attempts == 1
    assert set(hostile_web.user_agents) == {cfg.user_agent}  # our UA on every request


def test_options_disable_robots_and_noai(hostile_web, loopback_download_config):
    img = hostile_web.image_names()[0]
    urls = [hostile_web.url(f"/noai/{img}"), hostile_web.url(f"/private/{img}"), hostile_web.url(f"/img/{img}", "deny.test")]
    on, _ = run_fetches(loopback_download_config(), urls)
    off, _ = run_fetches(loopback_download_config(respect_robots=False, respect_noai=False), urls)
    assert [r.status for r in on] == ["noai", "robots", "robots"]
    assert [r.status for r in off] == ["ok", "ok", "ok"]


def test_robots_fetched_once_per_host_and_5xx_disallows(hostile_web, loopback_download_config):
    img = hostile_web.image_names()[0]
    urls = [hostile_web.url(f"/img/{img}?i={i}", "cdn.test") for i in range(20)]
    urls.append(hostile_web.url(f"/img/{img}", "robots500.test"))
    results, f = run_fetches(loopback_download_config(), urls)
    assert [r.status for r in results] == ["ok"] * 20 + ["robots"]
    assert f.robots.fetches == 2


def test_private_addresses_refused_before_connecting(hostile_web, loopback_download_config):
    img = hostile_web.image_names()[0]
    port = hostile_web.port
    urls = [f"http://private.test:{port}/img/{img}", f"http://metadata.test:{port}/",
            f"http://v6private.test:{port}/", f"http://10.1.2.3:{port}/", f"http://[fe80::1]:{port}/",
            f"http://0.0.0.0:{port}/", f"http://224.0.0.1:{port}/"]
    results, _ = run_fetches(loopback_download_config(), urls)
    assert [r.status for r in results] == ["private_address"] * len(urls)
    # loopback itself is refused unless allowed
    hits = sum(hostile_web.hits.values())
    results, _ = run_fetches(loopback_download_config(allow_loopback=False),
                             [f"http://127.0.0.1:{port}/img/{img}", hostile_web.url(f"/img/{img}")])
    assert [r.status for r in results] == ["private_address"] * 2
    assert sum(hostile_web.hits.values()) == hits  # nothing reached the server


def test_every_resolved_address_must_pass_and_rebinding_cannot_slip_through(hostile_web, loopback_download_config):
    calls = []

    async def mixed(host, port):
        return ["127.0.0.1", "10.0.0.5"]

    async def rebinding(host, port):  # 1st answer passes the check, later ones point inside
        calls.append(host)
        return ["127.0.0.1"] if len(calls) == 1 else ["10.9.9.9"]

    url = f"http://mixed.example:{hostile_web.port}/img/{hostile_web.image_names()[0]}"
    cfg = loopback_download_config(host_overrides=[], respect_robots=False)
    assert run_fetches(cfg, [url], resolve_fn=mixed)[0][0].status == "private_address"
    res = run_fetches(cfg, [url.replace("mixed", "rebind")], resolve_fn=rebinding)[0][0]
    assert res.status in ("ok", "private_address")  # and the network guard saw no 10.9.9.9 connect


def test_bad_input_is_a_counted_drop_not_an_exception(hostile_web, loopback_download_config):
    img = hostile_web.image_names()[0]
    cfg = loopback_download_config(host_overrides=hostile_web.host_overrides() + ["xn--bcher-kva.test=127.0.0.1"])
    urls = ["not a url", "file:///etc/passwd", "ftp://example.org/a.jpg", "data:image/png;base64,iVBOR",
            "javascript:alert(1)", "http://", "http:///nohost", "", None, 12345,
            hostile_web.url(f"/img/{img}?q=" + "a" * 5000), "http://[::1/x", f"http://bücher.test:{hostile_web.port}/img/{img}"]
    results, _ = run_fetches(cfg, urls)
    statuses = [r.status for r in results]
    assert statuses[:12] == ["bad_scheme", "bad_scheme", "bad_scheme", "bad_scheme", "bad_scheme", "bad_url",
                             "bad_url", "bad_url", "bad_url", "bad_url", "bad_url", "bad_url"], statuses
    assert statuses[12] == "ok"  # IDN host -> punycode -> resolved through the override


def test_retry_after_and_backoff_use_the_injected_sleep(hostile_web, loopback_download_config):
    waits = []

    async def fake_sleep(s):
        waits.append(s)

    cfg = loopback_download_config(retries=3, backoff_base=0.5, backoff_max=100, max_retry_after=5)
    res = run_fetches(cfg, [hostile_web.url("/status/503")], sleep=fake_sleep)[0][0]
    assert res.status == "http_503" and res.attempts == 4
    assert [0.5 * 2 ** i * 0.5 <= w < 0.5 * 2 ** i * 1.5 for i, w in enumerate(waits)] == [True] * 3
    waits.clear()
    res = run_fetches(cfg, [hostile_web.url("/flaky/t2?fail=2&code=429&retry_after=3")], sleep=fake_sleep)[0][0]
    assert res.status == "ok" and waits == [3.0, 3.0]
    waits.clear()
    res = run_fetches(cfg, [hostile_web.url("/status/429?retry_after=60")], sleep=fake_sleep)[0][0]
    assert res.status == "http_429" and res.attempts == 1 and waits == []  # too long: give up
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412475.0) == 5.0


def test_per_host_concurrency_limits_parallel_requests(hostile_web, loopback_download_config):
    img = hostile_web.image_names()[0]
    urls = [hostile_web.url(f"/img/{img}?latency_ms=200&i={i}", "slow.test") for i in range(8)]
    t = time.monotonic()
    run_fetches(loopback_download_config(per_host_concurrency=2, respect_robots=False), urls)
    serial = time.monotonic() - t
    t = time.monotonic()
    run_fetches(loopback_download_config(per_host_concurrency=8, respect_robots=False), urls)
    parallel = time.monotonic() - t
    assert serial >= 0.8 and parallel < 0.6


def test_token_bucket_paces_with_injected_clock():
    now = [0.0]
    bucket = TokenBucket(rate=10, burst=2, clock=lambda: now[0])
    assert [round(bucket.reserve(), 3) for _ in range(4)] == [0.0, 0.0, 0.1, 0.2]
    now[0] = 10.0
    assert bucket.reserve() == 0.0
    assert TokenBucket(rate=0).reserve() == 0.0


def test_address_policy():
    for a in ["10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "224.0.0.1", "240.0.0.1",
              "0.0.0.0", "::", "fd00::1", "fe80::1", "ff02::1", "::ffff:10.0.0.1", "2002:a00:1::", "64:ff9b::a00:1"]:
        assert not address_allowed(a, allow_loopback=True), a
    assert address_allowed("127.0.0.1", True) and address_allowed("::1", True) and address_allowed("127.8.0.1", True)
    assert not address_allowed("127.0.0.1") and not address_allowed("::1")
    assert address_allowed("93.184.216.34") and address_allowed("2606:2800:220:1::1")
    assert check_url("http://x/" + "a" * 3000, 2048)[1] == "bad_url"


def test_network_guard_blocks_non_loopback(network_guard):
    before = len(network_guard.violations)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("10.255.255.1", 9), timeout=0.1)
    s = socket.socket()
    with pytest.raises(ConnectionRefusedError):
        s.connect(("192.0.2.1", 80))
    s.close()
    with pytest.raises(ConnectionRefusedError):
        socket.getaddrinfo("example.org", 80)
    assert len(network_guard.violations) == before + 3
    del network_guard.violations[before:]  # expected: this test probes the guard itself
