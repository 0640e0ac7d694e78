"""normalize_url's fast path (URLs already in normal form skip urlsplit) gives exactly what the
urlsplit reference gives, on the 10,000 real LAION URLs and on edits of them that each touch one
rule (case, port, fragment, empty query, userinfo, IPv6, whitespace, control bytes, non-ASCII)."""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from clipcurate.schemas.uid import _NORMAL, _normalize_split, normalize_url
from clipcurate.testing.shared_data import SHARED_DATA

DATA = SHARED_DATA / "img2dataset-tests" / "test_10000.parquet"


def _reference(url: str) -> str:
    return _normalize_split(url.strip())


def _edits(url: str) -> list[str]:
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return [
        url, url.upper(), scheme.upper() + "://" + rest, f"{scheme}://{host.upper()}{slash}{path}",
        f"{scheme}://{host}:80{slash}{path}", f"{scheme}://{host}:443{slash}{path}",
        f"{scheme}://{host}:8080{slash}{path}", f"{scheme}://{host}", f"{scheme}://{host}?q=1",
        f"{scheme}://{host}/?", url + "?", url + "??", url + "?a=1?", url + "#frag", url + "#",
        f"{scheme}://user:pw@{host}{slash}{path}", f"{scheme}://[::1]{slash}{path}",
        f"{scheme}://[::1{slash}{path}", f" \t{url}\n", url.replace("/", "/\t", 1), url + "\x01",
        url.replace("/", "\\", 3), url + "/é", f"{scheme}://hôst.example{slash}{path}",
        f"ftp://{host}{slash}{path}", f"{scheme}:/{host}{slash}{path}", f"{scheme}://{slash}{path}",
        f"{scheme}://{host}.{slash}{path}", f"{scheme}://{host}//{path}", url + "%20x", url + " y",
    ]


@pytest.fixture(scope="module")
def real_urls() -> list[str]:
    return pq.read_table(DATA, columns=["URL"]).column("URL").to_pylist()


def test_fast_path_equals_urlsplit_on_real_urls_and_their_edits(real_urls):
    fast = checked = 0
    for url in real_urls:
        for u in _edits(url):
            assert normalize_url(u) == _reference(u), u
            checked += 1
            fast += bool(_NORMAL.fullmatch(u.strip()))
    # the fast path must actually serve most real URLs, and the edits must reach the slow path
    assert sum(bool(_NORMAL.fullmatch(u)) for u in real_urls) > 0.99 * len(real_urls)
    assert fast < checked / 2


@pytest.mark.parametrize("url, want", [
    ("http://a.com", "http://a.com/"),
    ("http://a.com/x?", "http://a.com/x"),
    ("http://a.com/x??", "http://a.com/x??"),
    ("https://a.com/p?w=1&#038;h=2", "https://a.com/p?w=1&"),
    ("HTTP://A.com:80/B", "http://a.com/B"),
    ("https://a.com:8443/x", "https://a.com:8443/x"),
])
def test_known_forms(url, want):
    assert normalize_url(url) == want == _reference(url)
