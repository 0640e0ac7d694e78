"""The columns the safety stages add, appended to the Parquet schemas only when a check is on
(so a run without safety checks writes the same bytes as before)."""
from __future__ import annotations

import pyarrow as pa

from clipcurate.safety.config import SafetyConfig

# kept and rejected records
SCORE_FIELDS = [
    pa.field("toxic_score", pa.float32()),    # caption, alt-profanity-check, [0, 1]
    pa.field("nsfw_score", pa.float32()),     # image, NudeNet's exposed-part detections, [0, 1]
    pa.field("nsfw_clip_score", pa.float32()),  # image, the pluggable head on CLIP embeddings, [0, 1]
    pa.field("face_bboxes", pa.list_(pa.list_(pa.float64()))),  # [x1, y1, x2, y2] in [0, 1] (DataComp's)
    pa.field("faces_blurred", pa.bool_()),    # the stored image had its face boxes blurred
]
# rejects only: which list matched and what (a rule or a hash; never the image)
REJECT_FIELDS = [pa.field("safety_list", pa.string()), pa.field("safety_match", pa.string())]


def extend(schema: pa.Schema, cfg: SafetyConfig, *, reject: bool = False) -> pa.Schema:
    """``schema`` plus the safety columns when any safety check is on; else ``schema`` itself."""
    if not (cfg.text_enabled or cfg.image_enabled or cfg.nsfw_clip_head):
        return schema
    fields = SCORE_FIELDS + (REJECT_FIELDS if reject else [])
    out = schema
    for f in fields:
        if out.get_field_index(f.name) < 0:
            out = out.append(f)
    return out.with_metadata(schema.metadata)
