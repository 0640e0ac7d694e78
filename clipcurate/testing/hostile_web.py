"""A loopback HTTP/1.1 server that serves real images and misbehaves on purpose.

Tests, benchmarks and the demo point the downloader at it.  It binds 127.0.0.1 only,
runs an asyncio loop in a daemon thread (``HostileWeb(...).start()``, or as a context
manager) or in a child process (:func:`start_subprocess`, which exits when its parent
closes its stdin), and stops by itself.  The HTTP layer is hand written so that it can
lie (Content-Length), stall, drip and stream without end.

Host names (map them to 127.0.0.1 with :meth:`HostileWeb.host_overrides`) change
robots.txt: ``deny.test`` disallows everything, ``robots500.test`` answers 500 (so
RFC 9309 says: disallow all), a host whose name starts with ``bigrobots`` serves a
490 KB robots.txt (:func:`big_robots`); every other host disallows ``/private/`` only.

DNS: with ``dns=True`` the server also answers DNS over UDP on 127.0.0.1 (``dns_port``;
point ``DownloadConfig.dns_servers`` at it): every ``*.test`` name is 127.0.0.1 (the
PRIVATE_HOSTNAMES their private address), other names NXDOMAIN; a name with a label
``dnsstall-<ms>`` is answered after <ms> milliseconds (a resolver that stalls per host).
``host_report()`` gives, per canonical host (lower case, no port, no trailing dot), the
requests, the most in flight at once and the most that arrived within any 1 s window.

Paths (any query string is ignored unless named; ``?latency_ms=N`` adds latency):

=====================  ==============================================================
/img/<name>            a real image file from the image folders (``?xrobots=V``: with
                       ``X-Robots-Tag: V``)
/gzip/<name>           the same, sent with Content-Encoding: gzip
/gzip-trailing/<name>  the gzip member of the image, then endless bytes after it
                       (``?trailing=N``: N bytes, then the connection closes)
/noai/<name>           the same, with ``X-Robots-Tag: noai, noimageai``
/private/<name>        the same, but disallowed by robots.txt
/gen/<kind>            generated images: tiny.png wide.png anim.gif cmyk.jpg
                       palette.png gray16.png rotated.jpg rgba.png
/hang                  reads the request, never answers
/drip                  Content-Length 1000, then 1 byte per second
/status/<code>         that status (``?retry_after=N`` adds Retry-After)
/flaky/<key>?fail=N    503 (Retry-After: 0) N times for this key, then an image
/loop/a, /loop/b       redirect to each other
/chain/<n>             n redirects, then an image
/redirect?to=<url>     302 to any URL (e.g. a private address)
/truncated.jpg         the first half of a real JPEG
/random.jpg            random bytes as image/jpeg
/html.jpg              an HTML page as image/jpeg
/bomb.png              a 50,000 x 50,000 PNG of a few KB
/gzip-bomb             256 MB of zeros gzipped to ~250 KB, as image/png
/huge-length           Content-Length: 10^13, then 1 KB and a stall
/endless               chunked image/jpeg that never ends
=====================  ==============================================================
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import gzip
import io
import json
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

HOSTNAMES = ("good.test", "img.test", "cdn.test", "slow.test", "deny.test", "robots500.test")
PRIVATE_HOSTNAMES = {"private.test": "10.0.0.7", "metadata.test": "169.254.169.254",
                     "v6private.test": "fd00::1"}
TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
         ".webp": "image/webp", ".bmp": "image/bmp", ".tif": "image/tiff", ".tiff": "image/tiff"}
REASONS = {200: "OK", 302: "Found", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error",
           503: "Service Unavailable"}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(side: int = 50_000, rows: int = 200) -> bytes:
    """A 1-bit grayscale PNG whose header says ``side`` x ``side``; IDAT holds ``rows`` rows."""
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    raw = (b"\x00" + b"\x00" * ((side + 7) // 8)) * rows
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(raw, 9))
            + _png_chunk(b"IEND", b""))


def gzip_bomb(decoded_mb: int = 256) -> bytes:
    """gzip of ``decoded_mb`` MB of zeros (about 1/1000 of that on the wire)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\x00" * (1 << 20)
    return b"".join([z.compress(block) for _ in range(decoded_mb)] + [z.flush()])


def big_robots(size: int = 490_000) -> bytes:
    """A robots.txt of about ``size`` bytes for every agent: thousands of plain Disallow paths,
    a few hundred wildcard rules, then ``Disallow: /private/`` (so /img/ stays allowed)."""
    lines, n, i = ["User-agent: *", "Allow: /img/allowed-by-rule/"], 40, 0
    while n < size - 100:
        line = (f"Disallow: /*/archive-{i}/*.php$" if i % 100 == 0 else f"Disallow: /catalogue/section-{i}/item-{i * 7919 % 100003}/")
        lines.append(line)
        n, i = n + len(line) + 1, i + 1
    lines.append("Disallow: /private/")
    return ("\n".join(lines) + "\n").encode()


def canonical_host(host_header: str) -> str:
    """Host header -> host the way the downloader keys politeness: lower case, no port, no
    trailing dot (IPv6 literals keep their brackets)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0].rstrip(".") if ":" in host else host.rstrip(".")


def dns_answer(query: bytes) -> tuple[bytes | None, float, str]:
    """(response, delay in seconds, name) for one DNS query over UDP; (None, 0, "") if unparseable.
    ``*.test`` -> 127.0.0.1 (private test names -> their address), others NXDOMAIN, a
    ``dnsstall-<ms>`` label delays the answer."""
    if len(query) < 17:
        return None, 0.0, ""
    i, labels = 12, []
    while i < len(query) and query[i]:
        n = query[i]
        labels.append(query[i + 1:i + 1 + n].decode("ascii", "replace").lower())
        i += 1 + n
    if i + 5 > len(query):
        return None, 0.0, ""
    qtype = struct.unpack(">H", query[i + 1:i + 3])[0]
    question = query[12:i + 5]
    name = ".".join(labels)
    delay = max((int(lab[9:]) for lab in labels if lab.startswith("dnsstall-") and lab[9:].isdigit()), default=0)
    addr = PRIVATE_HOSTNAMES.get(name, "127.0.0.1") if name.endswith(".test") else None
    answers = b""
    if addr is not None:
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        if (qtype, family) in ((1, socket.AF_INET), (28, socket.AF_INET6)):
            rdata = socket.inet_pton(family, addr)
            answers = struct.pack(">HHHIH", 0xC00C, qtype, 1, 60, len(rdata)) + rdata
    rcode = 0 if addr is not None else 3
    flags = 0x8400 | (query[2] & 0x01) << 8 | 0x0080 | rcode  # QR AA, RD copied, RA
    head = query[:2] + struct.pack(">HHHHH", flags, 1, 1 if answers else 0, 0, 0)
    return head + question + answers, delay / 1000, name


class _Dns(asyncio.DatagramProtocol):
    def __init__(self, web: "HostileWeb"):
        self.web = web

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        reply, delay, name = dns_answer(data)
        if reply is None:
            return
        self.web.dns_queries[name] += 1
        asyncio.get_running_loop().call_later(delay, self.transport.sendto, reply, addr)


def generated_images() -> dict[str, bytes]:
    """Small images that exercise the image checks (sizes, modes, EXIF, animation)."""
    import numpy as np
    from PIL import Image

    def enc(im, fmt, **kw):
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        return buf.getvalue()

    grad = Image.linear_gradient("L").resize((300, 400))
    rgb = Image.merge("RGB", (grad, grad.rotate(90), grad.transpose(Image.Transpose.FLIP_TOP_BOTTOM)))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW on display
    frames = [Image.new("P", (240, 240), i * 40) for i in range(3)]
    rgba = rgb.convert("RGBA")
    rgba.putalpha(128)
    return {
        "tiny.png": enc(rgb.resize((20, 30)), "PNG"),
        "wide.png": enc(rgb.resize((1200, 220)), "PNG"),
        "anim.gif": enc(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0),
        "cmyk.jpg": enc(rgb.convert("CMYK"), "JPEG", quality=90),
        "palette.png": enc(rgb.convert("P"), "PNG"),
        "gray16.png": enc(Image.fromarray(np.asarray(grad).astype(np.uint16) * 257), "PNG"),
        "rotated.jpg": enc(rgb, "JPEG", quality=90, exif=exif.tobytes()),
        "rgba.png": enc(rgba, "PNG"),
    }


class HostileWeb:
    """The server.  ``image_dirs``: folders of real images served under /img/<name>.

    ``latency_ms`` delays every response (benchmarks use 50).  ``hits`` counts requests
    per request target (path and query), ``user_agents`` the User-Agent headers seen, both for assertions.
    """

    def __init__(self, image_dirs: list[Path] | tuple = (), latency_ms: float = 0.0, port: int = 0, seed: int = 0,
                 dns: bool = False):
        self.files: dict[str, Path] = {}
        for d in image_dirs:
            for p in sorted(Path(d).iterdir()):
                if p.suffix.lower() in TYPES:
                    self.files.setdefault(p.name, p)
        self.latency_ms, self.port, self.seed = latency_ms, port, seed
        self.hits: collections.Counter[str] = collections.Counter()
        self.user_agents: collections.Counter[str] = collections.Counter()
        self.dns, self.dns_port = dns, 0
        self.dns_queries: collections.Counter[str] = collections.Counter()  # by wire-format name
        self.in_flight: collections.Counter[str] = collections.Counter()   # by canonical host
        self.max_in_flight: collections.Counter[str] = collections.Counter()
        self.arrivals: dict[str, list[float]] = collections.defaultdict(list)
        self.robots_hits: collections.Counter[str] = collections.Counter()  # by canonical host
        self._flaky: collections.Counter[str] = collections.Counter()
        self._cache: dict[str, bytes] = {}
        self._generated: dict[str, bytes] | None = None
        self._futures: dict[str, asyncio.Future] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._server: asyncio.base_events.Server | None = None

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> "HostileWeb":
        self._thread = threading.Thread(target=self._run, name="hostile-web", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("hostile web server did not start within 10 s")
        return self

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._serve())
        self._ready.set()
        self._loop.run_forever()
        for task in asyncio.all_tasks(self._loop):
            task.cancel()
        self._loop.run_until_complete(asyncio.sleep(0))
        self._loop.close()

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._conn, "127.0.0.1", self.port, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.dns:
            transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                lambda: _Dns(self), local_addr=("127.0.0.1", 0))
            self.dns_port = transport.get_extra_info("sockname")[1]

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._server.close)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> "HostileWeb":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- addresses --------------------------------------------------------------------
    def url(self, path: str, host: str = "good.test") -> str:
        return f"http://{host}:{self.port}{path if path.startswith('/') else '/' + path}"

    @staticmethod
    def host_overrides(private: bool = True) -> list[str]:
        """``name=ip`` pairs for DownloadConfig.host_overrides (test names -> 127.0.0.1,
        and, with ``private``, a few names -> private addresses the guard must refuse)."""
        out = [f"{h}=127.0.0.1" for h in HOSTNAMES]
        if private:
            out += [f"{h}={ip}" for h, ip in PRIVATE_HOSTNAMES.items()]
        return out

    def image_names(self) -> list[str]:
        return sorted(self.files)

    def host_report(self, window: float = 1.0) -> dict[str, dict[str, int]]:
        """Per canonical host: requests, most in flight at once, most arrivals within ``window`` s."""
        out = {}
        for host, times in sorted(self.arrivals.items()):
            times, most, j = sorted(times), 0, 0
            for i, t in enumerate(times):
                while times[j] < t - window:
                    j += 1
                most = max(most, i - j + 1)
            out[host] = {"requests": len(times), "max_in_flight": self.max_in_flight[host], "max_in_window": most,
                         "robots_fetches": self.robots_hits[host]}
        return out

    # -- HTTP -------------------------------------------------------------------------
    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                keep = await self._dispatch(head.decode("latin-1"), reader, writer)
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, OSError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            writer.close()

    async def _dispatch(self, head: str, reader, writer) -> bool:
        lines = head.split("\r\n")
        method, target, _ = (lines[0].split(" ", 2) + ["", ""])[:3]
        headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
        host = canonical_host(headers.get("host", ""))
        parts = urlsplit(target)
        path, query = unquote(parts.path), parse_qs(parts.query)
        self.hits[target] += 1
        self.user_agents[headers.get("user-agent", "")] += 1
        self.arrivals[host].append(time.monotonic())
        self.in_flight[host] += 1
        self.max_in_flight[host] = max(self.max_in_flight[host], self.in_flight[host])
        try:
            delay = float(query.get("latency_ms", [self.latency_ms])[0])
            if delay > 0:
                await asyncio.sleep(delay / 1000)
            return await self._route(host, path, query, reader, writer)
        finally:
            self.in_flight[host] -= 1

    async def _send(self, writer, status: int, body: bytes = b"", ctype: str = "text/plain",
                    extra: dict[str, str] | None = None, keep: bool = True) -> bool:
        hdrs = {"Content-Type": ctype, "Content-Length": str(len(body)),
                "Connection": "keep-alive" if keep else "close", **(extra or {})}
        head = f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
        return keep

    def _file(self, name: str) -> tuple[bytes, str] | None:
        p = self.files.get(name)
        if p is None:
            return None
        if name not in self._cache:
            self._cache[name] = p.read_bytes()
        return self._cache[name], TYPES[p.suffix.lower()]

    async def _gen(self, name: str) -> tuple[bytes, str] | None:
        body = (await self._lazy("generated", generated_images)).get(name)
        return None if body is None else (body, TYPES["." + name.rsplit(".", 1)[1]])

    async def _lazy(self, key: str, make):
        """Build a payload once, off the event loop (the gzip bomb takes most of a second)."""
        if key not in self._futures:
            self._futures[key] = asyncio.get_running_loop().run_in_executor(None, make)
        return await self._futures[key]

    async def _route(self, host: str, path: str, q: dict, reader, writer) -> bool:
        first = lambda k, d: q.get(k, [d])[0]  # noqa: E731
        seg = path.strip("/").split("/")
        if path == "/robots.txt":
            self.robots_hits[host] += 1
            return await self._robots(host, writer)
        if seg[0] in ("img", "private", "noai", "gzip") and len(seg) == 2:
            found = self._file(seg[1])
            if found is None:
                return await self._send(writer, 404, b"no such image")
            body, ctype = found
            extra = {"X-Robots-Tag": "noai, noimageai"} if seg[0] == "noai" else {}
            if "xrobots" in q:
                extra["X-Robots-Tag"] = first("xrobots", "")
            if seg[0] == "gzip":
                body, extra = gzip.compress(body, mtime=0), {"Content-Encoding": "gzip"}
            return await self._send(writer, 200, body, ctype, extra)
        if seg[0] == "gen" and len(seg) == 2:
            found = await self._gen(seg[1])
            return await (self._send(writer, 200, *found) if found else self._send(writer, 404))
        if seg[0] == "gzip-trailing" and len(seg) == 2 and self._file(seg[1]):
            return await self._gzip_trailing(writer, self._file(seg[1])[0], int(first("trailing", "-1")))
        if path == "/hang":
            await reader.read()  # until the client gives up
            return False
        if path == "/drip":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 1000\r\n\r\n")
            for _ in range(1000):
                writer.write(b"\xff")
                await writer.drain()
                await asyncio.sleep(1.0)
            return False
        if seg[0] == "status" and len(seg) == 2 and seg[1].isdigit():
            extra = {"Retry-After": first("retry_after", "")} if "retry_after" in q else {}
            return await self._send(writer, int(seg[1]), b"status " + seg[1].encode(), extra=extra)
        if seg[0] == "flaky" and len(seg) == 2:
            self._flaky[seg[1]] += 1
            if self._flaky[seg[1]] <= int(first("fail", "1")):
                return await self._send(writer, int(first("code", "503")), b"try again",
                                        extra={"Retry-After": first("retry_after", "0")})
            return await self._send(writer, 200, *(await self._any_image()))
        if seg[0] == "loop" and len(seg) == 2:
            return await self._send(writer, 302, extra={"Location": "/loop/" + ("b" if seg[1] == "a" else "a")})
        if seg[0] == "chain" and len(seg) == 2 and seg[1].isdigit():
            n = int(seg[1])
            if n <= 0:
                return await self._send(writer, 200, *(await self._any_image()))
            return await self._send(writer, 302, extra={"Location": f"/chain/{n - 1}"})
        if path == "/redirect":
            return await self._send(writer, 302, extra={"Location": first("to", "/")})
        if path == "/truncated.jpg":
            body, _ = await self._any_image(".jpg")
            return await self._send(writer, 200, body[: len(body) // 2], "image/jpeg")
        if path == "/random.jpg":
            body = random.Random(self.seed).randbytes(50_000)
            return await self._send(writer, 200, body, "image/jpeg")
        if path == "/html.jpg":
            body = b"<!doctype html><html><head><title>Not an image</title></head><body>nope</body></html>"
            return await self._send(writer, 200, body, "image/jpeg")
        if path == "/bomb.png":
            return await self._send(writer, 200, await self._lazy("bomb.png", bomb_png), "image/png")
        if path == "/gzip-bomb":
            return await self._send(writer, 200, await self._lazy("gzip-bomb", gzip_bomb), "image/png",
                                    {"Content-Encoding": "gzip"})
        if path == "/huge-length":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 10000000000000\r\n\r\n"
                         + b"\xff\xd8" + b"\x00" * 1022)
            await writer.drain()
            await reader.read()
            return False
        if path == "/endless":
            return await self._endless(writer)
        return await self._send(writer, 404, b"not found")

    async def _endless(self, writer) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n" % 65536 + b"\xff" * 65536 + b"\r\n"
        while True:
            writer.write(chunk)
            await writer.drain()

    async def _gzip_trailing(self, writer, body: bytes, trailing: int) -> bool:
        """A gzip member, then ``trailing`` bytes (< 0: endless) after it; the connection closes."""
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Encoding: gzip\r\n"
                     b"Connection: close\r\n\r\n" + gzip.compress(body, mtime=0))
        junk = b"\x00trailing" * 6554
        while trailing != 0:
            part = junk if trailing < 0 else junk[:trailing]
            writer.write(part)
            trailing = -1 if trailing < 0 else trailing - len(part)
            await writer.drain()
        return False

    async def _robots(self, host: str, writer) -> bool:
        if host == "robots500.test":
            return await self._send(writer, 500, b"robots broken")
        if host.startswith("bigrobots"):
            return await self._send(writer, 200, await self._lazy("big-robots", big_robots))
        body = b"User-agent: *\nDisallow: /\n" if host == "deny.test" else b"User-agent: *\nDisallow: /private/\n"
        return await self._send(writer, 200, body)

    async def _any_image(self, suffix: str = "") -> tuple[bytes, str]:
        names = [n for n in self.image_names() if n.lower().endswith(suffix)]
        if not names:
            return await self._gen("rotated.jpg")
        return self._file(names[0])


def start_subprocess(image_dirs: list[Path], latency_ms: float = 0.0,
                     max_seconds: float = 3600, nice: int = 0, dns: bool = False) -> tuple[subprocess.Popen, int]:
    """Run the server in a child process; returns (process, port).  The child exits when
    its stdin closes (so when the parent dies) or after ``max_seconds``.  ``nice`` > 0
    lowers its priority (benchmarks: the server stands for remote hosts, so it should not
    take the client's CPU when the cores are saturated).  With ``dns``, ``proc.dns_port``
    is its DNS port.  :func:`stop_subprocess` stops it and returns its ``host_report()``."""
    cmd = [sys.executable, "-m", "clipcurate.testing.hostile_web", "--latency-ms", str(latency_ms),
           "--max-seconds", str(max_seconds), *(["--dns"] if dns else []), *map(str, image_dirs)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            preexec_fn=(lambda: os.nice(nice)) if nice > 0 else None)
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"hostile web subprocess did not start: {line!r}")
    proc.dns_port = int(line.split()[3]) if dns else 0
    return proc, int(line.split()[1])


def stop_subprocess(proc: subprocess.Popen, wait: float = 30) -> dict:
    """Close the child's stdin (it exits) and return its host_report(); kill it after ``wait`` s."""
    try:
        out, _ = proc.communicate(timeout=wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    for line in (out or "").splitlines():
        if line.startswith("REPORT "):
            return json.loads(line[7:])
    return {}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="loopback hostile web server (tests/benchmarks)")
    ap.add_argument("image_dirs", nargs="*", type=Path)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--max-seconds", type=float, default=3600)
    ap.add_argument("--dns", action="store_true", help="also answer DNS on 127.0.0.1 (UDP)")
    args = ap.parse_args(argv)
    web = HostileWeb(args.image_dirs, latency_ms=args.latency_ms, port=args.port, dns=args.dns).start()
    print(f"PORT {web.port} DNS {web.dns_port}", flush=True)
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait(args.max_seconds)
    web.stop()
    try:
        print("REPORT " + json.dumps(web.host_report()), flush=True)
    except BrokenPipeError:  # the parent is gone
        pass


if __name__ == "__main__":
    main()
