"""Multimodal C4 (mmc4) documents: JSON Lines, one web page per line (gzipped or plain).

A document holds ``url``, ``text_list`` (its sentences) and ``image_info`` (one object per
image: ``raw_url``, ``image_name``, ``matched_text_index``, ``matched_sim``,
``face_detections``), plus ``similarity_matrix`` and ``could_have_url_duplicate``
(github.com/allenai/mmc4).  Each image is one candidate: url = ``raw_url``, caption =
``text_list[matched_text_index]``; ``extra`` holds ``page_url`` (the document url),
``matched_sim`` and ``image_index``, plus ``extra_cols`` (paths into the document, or into
the image with ``image_info[*].<key>``).  ``offset`` is the document's line index.

A document without the ``text_list`` / ``image_info`` lists, or an image whose
``matched_text_index`` does not point into ``text_list``, is a ``malformed_row`` naming
the field; a list or object where url or caption must be text too.
"""
from __future__ import annotations

from typing import Any, Iterator

from clipcurate.ingest.config import IngestConfig
from clipcurate.ingest.formats import open_binary
from clipcurate.ingest.paths import EACH, get, parse_path
from clipcurate.ingest.rows import Pair, candidate, dropped
from clipcurate.ingest.tabular import _TRUNCATED, json_error, json_objects

FMT = "mmc4"
URL_FIELD = "image_info[*].raw_url"
CAPTION_FIELD = "text_list[matched_text_index]"
_IMAGE = ("image_info", EACH)


def read_mmc4(path: str, cfg: IngestConfig, source: str | None = None) -> Iterator[Pair]:
    """Yield ``(status, record)`` per image of every document in ``path``."""
    name = source or path
    extras = [(col, parse_path(col)) for col in cfg.extra_cols]
    for col, steps in extras:
        if EACH in steps and steps[:2] != _IMAGE:
            raise ValueError(f"{name}: mmc4 extra column {col!r}: [*] may only expand image_info")
    with open_binary(path) as binary:
        for offset, (doc, err) in enumerate(json_objects(binary, name, cfg.encoding, allow_array=False)):
            if err is not None:
                yield json_error(err, name, offset, FMT)
                if isinstance(err, _TRUNCATED):
                    return
                continue
            yield from document_pairs(doc, name, offset, extras)


def document_pairs(doc: dict[str, Any], name: str, offset: int,
                   extras: list[tuple[str, tuple]] = ()) -> Iterator[Pair]:
    """The candidates of one mmc4 document (pure; see the module docstring)."""
    texts, images = doc.get("text_list"), doc.get("image_info")
    for field, value in (("text_list", texts), ("image_info", images)):
        if not isinstance(value, list):
            yield _malformed(name, offset, f"mmc4 field {field!r} is {type(value).__name__}, not a list")
            return
    page_url = doc.get("url") if isinstance(doc.get("url"), str) else None
    for k, image in enumerate(images):
        if not isinstance(image, dict):
            yield _malformed(name, offset, f"image_info[{k}] is {type(image).__name__}, not an object")
            continue
        index = image.get("matched_text_index")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(texts):
            yield _malformed(name, offset, f"image_info[{k}].matched_text_index {index!r} is not an index "
                                           f"into text_list ({len(texts)} sentences)")
            continue
        extra = {"page_url": page_url, "matched_sim": image.get("matched_sim"), "image_index": k}
        for col, steps in extras:
            extra[col] = get(image, steps[2:]) if steps[:2] == _IMAGE else get(doc, steps)
        yield candidate(image.get("raw_url"), texts[index], source=name, offset=offset, source_format=FMT,
                        extra=extra, url_col=URL_FIELD, caption_col=CAPTION_FIELD)


def _malformed(name: str, offset: int, what: str) -> Pair:
    return dropped("malformed_row", source=name, offset=offset, source_format=FMT,
                   error=f"{name} row {offset}: {what}")
