"""The one vocabulary of statuses and drop reasons used by every stage.

A status is a short snake_case word.  ``ok`` means kept; anything else is the reason a
record was dropped at the stage that set it.  ``http_<code>`` is a family (http_404, ...).
"""
from __future__ import annotations

import re

OK = "ok"

STATUSES: dict[str, str] = {
    "ok": "kept",
    # ingest
    "malformed_row": "row could not be parsed (wrong column count, bad JSON, bad types)",
    "missing_url": "url empty or null",
    "missing_caption": "caption empty or null",
    "bad_encoding": "text not decodable in the declared or detected charset",
    "data_uri": "image src is a data: URI",
    "empty_alt": "<img> without alt text",
    "bad_url": "URL cannot be parsed or resolved",
    "truncated_record": "WARC/WAT record truncated or unreadable",
    # ingest, per input file (manifest inputs[].status; a dropped file counts once)
    "bad_file": "input file not in the expected format (corrupt Parquet, not a WARC, bad gzip, missing column)",
    "unreadable_file": "input file cannot be opened or read (permission denied, vanished, I/O error)",
    "truncated_file": "input file ends early or is corrupt part-way; rows before the fault are kept",
    # text filters
    "too_short": "caption shorter than the minimum words or characters",
    "too_long": "caption longer than the maximum words or characters",
    "lang": "caption language not in the allowed set",
    "junk_alt": "caption is a file name, a URL or a generic word like 'image'",
    # dedupe
    "dup_url": "another sample has the same normalized URL",
    "dup_content": "another sample has the same image bytes (sha256)",
    "near_dup": "near-duplicate of a kept sample (caption and/or image)",
    "near_dup_caption": "caption near-duplicate of a kept sample",
    "near_dup_image": "image near-duplicate of a kept sample",
    "eval_contamination": "image near-duplicate of an evaluation-set image",
    # metaclip
    "no_match": "caption matches no metadata entry",
    "no_metadata_language": "caption language has no worldwide metadata list (and no 'other' list)",
    "balanced_out": "not drawn by the per-entry cap t",
    # download
    "timeout": "deadline passed (connect + reads)",
    "connection_error": "connection refused, reset, or DNS failure",
    "dns_timeout": "no DNS answer within the request deadline (not cached across runs)",
    "too_large": "body above the byte cap",
    "not_image": "body is not a recognised image format",
    "decode_error": "image could not be decoded",
    "too_small": "image side below the minimum",
    "bad_aspect": "aspect ratio beyond the maximum",
    "bomb": "pixel count above the limit (decompression bomb)",
    "private_address": "host resolves to a loopback/private/reserved address",
    "robots": "disallowed by robots.txt or X-Robots-Tag noindex",
    "noai": "X-Robots-Tag noai / noimageai",
    "redirect_loop": "too many redirects or a loop",
    "bad_scheme": "URL scheme not http(s)",
    "http_error": "other HTTP failure",
    # safety (clipcurate.safety; rejects name the list in safety_list)
    "blocklisted": "URL, domain or image hash (MD5/SHA/PDQ) on a blocklist",
    "opted_out": "URL or domain on an opt-out list (its owner opted out of AI training)",
    "toxic_text": "caption toxicity score at or above safety.toxic_threshold",
    "nsfw": "image NSFW score at or above safety.nsfw_threshold",
    "has_face": "image shows a face and safety.faces = drop",
    # scoring
    "low_score": "clip score below the cut",
    "score_error": "image could not be scored",
}

_HTTP = re.compile(r"^http_\d{3}$")


def is_known(status: str) -> bool:
    return status in STATUSES or bool(_HTTP.match(status))


def check(status: str) -> str:
    """Return ``status`` if it is in the vocabulary, else raise ValueError."""
    if not is_known(status):
        raise ValueError(f"unknown status {status!r}; add it to clipcurate.schemas.status.STATUSES")
    return status
