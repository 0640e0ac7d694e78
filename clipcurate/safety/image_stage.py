"""Stage ``safety_image``: image hash lists, PDQ lists, NSFW score and faces, right after download.

In: downloaded records (``image`` bytes).  Out: the stage dict ``{"kept", "counts", "rejects",
"stats"}``.  Checks, in order (the first drop wins):

1. ``hash_lists``: MD5 / SHA-1 / SHA-256 of the downloaded bytes on a list -> ``blocklisted``.
2. ``pdq_lists``: the image's PDQ hash within ``pdq_distance`` of an entry -> ``blocklisted``.
3. ``nsfw``: ``nsfw_score`` column; at or above ``nsfw_threshold`` -> ``nsfw``.
4. ``faces``: ``face_bboxes`` column (``[x1, y1, x2, y2]`` in [0, 1], DataComp's); ``blur``
   blurs each box in the stored bytes (re-encoded, ``sha256``/``width``/``height`` updated,
   ``faces_blurred`` true, counted as ``face_blurred``); ``drop`` drops as ``has_face``.

A record dropped here leaves without its image bytes: its reject holds ``safety_list`` and
``safety_match`` (the list's name and the matching hash, ``md5:<hex>`` ... ``pdq:<hex>``),
never the image, so the report shows no thumbnail of it.  Stats: ``("safety_image", {"lists":
[identity...], "models": [identity...], "faces_blurred": n, ...})``.  The lists and models are loaded once per
worker process (``Shared``).
"""
from __future__ import annotations

import hashlib
import io
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.utils.shared import Shared

from clipcurate.pipelines.stage import BatchCountingDoFn, apply_stage
from clipcurate.safety.config import SafetyConfig
from clipcurate.safety import faces as fc
from clipcurate.safety.hashes import DigestLists, PdqIndex, pdq_hash
from clipcurate.safety.lists import check_names, read_lists
from clipcurate.schemas.status import OK

STAGE = "safety_image"


def _require_pdq():
    try:
        import pdqhash  # noqa: F401
    except ModuleNotFoundError:
        raise ImportError("safety.pdq_lists needs pdqhash (built from source with a C++ compiler): "
                          "pip install 'clipcurate[pdq]'") from None


class ImageSafety:
    """Pure core: ``decide_batch(records) -> [(status, record)]``; ``stats()`` for the manifest."""

    def __init__(self, cfg: SafetyConfig, digests_of: str = "stored bytes"):
        check_names(cfg.hash_lists, "safety.hash_lists")
        check_names(cfg.pdq_lists, "safety.pdq_lists")
        self.cfg = cfg
        self.identities: list[dict[str, Any]] = []
        self.models: list[dict[str, Any]] = []
        self.digests = DigestLists(self._read(cfg.hash_lists, "hash_list")) if cfg.hash_lists else None
        self.pdq = None
        if cfg.pdq_lists:
            _require_pdq()
            self.pdq = PdqIndex.from_lists(self._read(cfg.pdq_lists, "pdq_list"), cfg.pdq_distance, cfg.pdq_bands)
        self.digests_of = digests_of
        self.nudenet = self.haar = None
        if cfg.nsfw_on or (cfg.faces != "off" and cfg.face_detector == "nudenet"):
            from clipcurate.safety.nudenet_model import NudeNet
            self.nudenet = NudeNet()
            self.models.append(self.nudenet.identity())
        if cfg.faces != "off" and cfg.face_detector == "haar":
            self.haar = fc.HaarFaces(cfg.face_min_size, cfg.face_min_neighbors)
            self.models.append(self.haar.identity())

    def _read(self, specs: list[str], kind: str) -> list[tuple[str, list[str]]]:
        named, identities = read_lists(specs, kind)
        self.identities += identities
        return named

    def stats(self) -> dict[str, Any]:
        c = self.cfg
        return {"lists": self.identities, "models": self.models,
                "digests_of": self.digests_of if c.hash_lists else None,
                "pdq_distance": c.pdq_distance if c.pdq_lists else None,
                "pdq_min_quality": c.pdq_min_quality if c.pdq_lists else None,
                "nsfw_threshold": c.nsfw_threshold, "faces": c.faces}

    def decide(self, rec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        data = rec.get("image")
        if not data:
            return OK, rec  # nothing to check (a stage before kept a record without bytes)
        hit = self.digests.match(data) if self.digests is not None else None
        if hit is None and self.pdq is not None:
            h = pdq_hash(data)
            if h is not None and h[1] >= self.cfg.pdq_min_quality:
                m = self.pdq.match(h[0])
                hit = (m.list_name, f"pdq:{m.hash_hex}") if m else None
        if hit is not None:
            return "blocklisted", _without_image(rec, safety_list=hit[0], safety_match=hit[1])
        if self.nudenet is None and self.haar is None:
            return OK, rec
        return self._look(rec, data)

    def _look(self, rec: dict[str, Any], data: bytes) -> tuple[str, dict[str, Any]]:
        """NSFW score and faces (one detector pass when both come from NudeNet)."""
        from PIL import Image, ImageOps
        c = self.cfg
        try:
            with Image.open(io.BytesIO(data)) as im:
                img = ImageOps.exif_transpose(im).convert("RGB")
        except Exception as e:  # noqa: BLE001 - the download stage decoded it; a failure here is counted
            return "decode_error", dict(rec, image=None, error=f"safety_image: {type(e).__name__}: {e}")
        rgb = np.asarray(img)
        dets = self.nudenet.detect(rgb) if self.nudenet is not None else []
        out = dict(rec)
        if c.nsfw_on:
            from clipcurate.safety.nudenet_model import nsfw_score
            out["nsfw_score"] = nsfw_score(dets)
            if c.nsfw_threshold is not None and out["nsfw_score"] >= c.nsfw_threshold:
                return "nsfw", _without_image(out)
        if c.faces == "off":
            return OK, out
        if self.haar is not None:
            boxes = fc.merge_boxes(self.haar.boxes(rgb))
        else:
            from clipcurate.safety.nudenet_model import face_boxes
            boxes = fc.merge_boxes(face_boxes(dets, c.face_min_score))
        out["face_bboxes"] = fc.normalise(boxes, img.width, img.height)
        out["faces_blurred"] = False
        if boxes and c.faces == "drop":
            return "has_face", _without_image(out)
        if boxes and c.faces == "blur":
            blob, fmt = fc.encode(fc.blur_boxes(img, boxes, c.blur_strength), rec.get("image_format"))
            out.update(image=blob, sha256=hashlib.sha256(blob).hexdigest(), image_format=fmt,
                       width=img.width, height=img.height, faces_blurred=True)
            if rec.get("phash"):
                from clipcurate.dedupe.phash import phash_bytes
                out["phash"] = phash_bytes(blob)
        return OK, out

    def decide_batch(self, records: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        return [self.decide(r) for r in records]


def _without_image(rec: dict[str, Any], **fields) -> dict[str, Any]:
    """The record for rejects: no image bytes, no thumbnail, only what names the match."""
    out = dict(rec, **fields)
    out["image"] = None
    return out


class _Holder:
    def __init__(self, core: ImageSafety):
        self.core = core


class _Decide(BatchCountingDoFn):
    def __init__(self, cfg: SafetyConfig, shared: Shared, keep_rejects: bool, digests_of: str):
        super().__init__(STAGE, keep_rejects, batch_size=cfg.batch_size)
        self.cfg, self.shared, self.digests_of = cfg, shared, digests_of
        self.core: ImageSafety | None = None

    def setup(self):
        self.core = self.shared.acquire(lambda: _Holder(ImageSafety(self.cfg, self.digests_of)),
                                        tag=repr((self.cfg, self.digests_of))).core

    def decide_batch(self, records, **_):
        out = self.core.decide_batch(records)
        blurred = sum(1 for s, r in out if s == OK and r.get("faces_blurred"))
        if blurred:
            self._counts["face_blurred"] += blurred  # not a drop: the manifest lists it under "other"
        return out


class SafetyImage(beam.PTransform):
    """Stage ``safety_image`` (see the module docstring).  Lists and models load at
    construction too, so a missing list or package fails before the pipeline runs."""

    def __init__(self, cfg: SafetyConfig, keep_rejects: bool = False, digests_of: str = "stored bytes"):
        super().__init__()
        self.cfg, self.keep_rejects, self.digests_of = cfg, keep_rejects, digests_of
        self._stats = ImageSafety(cfg, digests_of).stats()

    def expand(self, records):
        out = apply_stage(records, "Check", _Decide(self.cfg, Shared(), self.keep_rejects, self.digests_of))
        # what the stage changed (kept records whose stored image it blurred), beside the lists and models
        blurred = (out["kept"] | "Blurred" >> beam.Map(lambda r: int(bool(r.get("faces_blurred"))))
                   | "SumBlurred" >> beam.CombineGlobally(sum))
        stats = blurred | "Stats" >> beam.Map(lambda n, st: (STAGE, dict(st, faces_blurred=n)), self._stats)
        return {**out, "stats": stats}
