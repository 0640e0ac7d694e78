"""The report of a real run (the demo pipeline) opened in a real headless browser: every image
loads, nothing reaches the console, the gallery shows kept and dropped examples; a screenshot
is saved (``report_screenshot.png`` in the run directory, and in ``$CLIPCURATE_SCREENSHOT_DIR``
when set).  Needs Debian's ``chromium`` (``scripts/setup.sh`` installs it when run as root)."""
from __future__ import annotations

import html.parser
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from clipcurate.demo import demo_config, demo_dir, serve_directory, write_candidates
from clipcurate.pipelines.curate import run
from clipcurate.sinks.examples import read_examples

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no headless browser (chromium) on PATH: "
                                "install it with `apt-get install chromium` or run scripts/setup.sh as root")

# Injected at the top of a copy of the page: records failed loads and script errors, and after
# `load` writes what it saw into attributes of <body> (read back with --dump-dom).
PROBE = """<script>
window.__errs = [];
addEventListener('error', e => __errs.push((e.target && (e.target.id || e.target.alt)) || e.message), true);
for (const k of ['error', 'warn']) { const f = console[k]; console[k] = (...a) => { __errs.push(a.join(' ')); f(...a); }; }
addEventListener('load', () => {
  const imgs = [...document.images];
  document.body.dataset.images = imgs.length;
  document.body.dataset.bad = JSON.stringify(imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.id || i.alt));
  document.body.dataset.errors = JSON.stringify(__errs);
});
</script>"""


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [BROWSER, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--hide-scrollbars",
           f"--user-data-dir={tmp / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=10000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=tmp)


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory) -> Path:
    """A report written by a real demo run (all stages, loopback web, keep_rejects)."""
    base = tmp_path_factory.mktemp("report_browser")
    with serve_directory(demo_dir()) as url:
        cands = write_candidates(url, base / "candidates.parquet")
        cfg = demo_config(str(base / "run"), str(cands))
        run(cfg, [], report=True)
    return base / "run"


class _Body(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.body: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        if tag == "body":
            self.body = {k: v for k, v in attrs}


def test_every_image_loads_and_the_console_stays_empty(demo_report, tmp_path):
    page = (demo_report / "report.html").read_text(encoding="utf-8")
    probe = demo_report / "report_probe.html"
    probe.write_text(page.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    try:
        done = _chromium(tmp_path, "--dump-dom", probe.as_uri())
    finally:
        probe.unlink()
    assert done.returncode == 0, done.stderr[-2000:]
    parser = _Body()
    parser.feed(done.stdout)
    seen = parser.body
    assert "data-images" in seen, f"page did not finish loading: {done.stdout[:500]!r}"
    assert int(seen["data-images"]) == page.count("<img ") >= 12  # plots + example thumbnails
    assert json.loads(seen["data-bad"]) == []
    assert json.loads(seen["data-errors"]) == []

    plain = _chromium(tmp_path, "--dump-dom", (demo_report / "report.html").as_uri())
    assert plain.returncode == 0
    console = [line for line in plain.stderr.splitlines() if "CONSOLE" in line]
    assert console == []


def test_gallery_shows_kept_and_dropped_examples(demo_report):
    manifest = json.loads((demo_report / "manifest.json").read_text())
    examples = read_examples(str(demo_report))
    kept = [e for e in examples if e["stage"] == "kept"]
    assert 0 < len(kept) <= manifest["total_samples"]
    assert [e["uid"] for e in kept] == sorted(e["uid"] for e in kept)  # smallest uids, in order
    page = (demo_report / "report.html").read_text(encoding="utf-8")
    for e in examples:
        with Image.open(__import__("io").BytesIO(e["thumbnail"])) as im:
            assert im.format == "JPEG" and max(im.size) <= 96
        assert f'data-uid="{e["uid"]}"' in page
    # every image-stage drop of the demo (after download) has examples with its reason
    dropped_after = {(s, r) for s in ("dedupe_content", "score_filter")
                     for r in manifest["stages"][s]["dropped"]}
    assert dropped_after and dropped_after <= {(e["stage"], e["reason"]) for e in examples}
    assert "no image: dropped before or at download" in page  # text and download drops: captions
    assert "_unix" not in page.split("<h2>Stats</h2>", 1)[1].split("</pre>", 1)[0]
    assert "Not drawn: no duplicate clusters" in page


def test_screenshot(demo_report, tmp_path):
    shot = demo_report / "report_screenshot.png"
    done = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1100,6000",
                     (demo_report / "report.html").as_uri())
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    with Image.open(shot) as im:
        assert im.size == (1100, 6000)
        colors = im.convert("RGB").resize((110, 600)).getcolors(maxcolors=1 << 16)
        assert colors is None or len(colors) > 50  # a rendered page, not a blank one
    if os.environ.get("CLIPCURATE_SCREENSHOT_DIR"):
        Path(os.environ["CLIPCURATE_SCREENSHOT_DIR"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(os.environ["CLIPCURATE_SCREENSHOT_DIR"]) / shot.name)
