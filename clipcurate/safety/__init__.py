"""clipcurate.safety: trust and safety checks (docs/safety.md).

Stage transforms (each returns ``{"kept", "counts", "rejects", "stats"}``):
``SafetyText`` (URL blocklists, opt-out lists, caption toxicity; before download) and
``SafetyImage`` (image hash lists, PDQ, NSFW, faces; after download) and ``SafetyClip`` (the
threshold of the NSFW head on CLIP embeddings that the scoring stage computes; after score).
"""
from clipcurate.safety.clip_stage import SafetyClip
from clipcurate.safety.config import SafetyConfig
from clipcurate.safety.image_stage import ImageSafety, SafetyImage
from clipcurate.safety.text_stage import SafetyText, TextSafety
from clipcurate.safety.urls import UrlRules, build_rules

__all__ = ["SafetyClip", "SafetyConfig", "SafetyImage", "ImageSafety", "SafetyText", "TextSafety", "UrlRules", "build_rules"]
