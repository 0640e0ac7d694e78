"""NudeNet's bundled detector (``320n.onnx``, a YOLOv8n in the ``nudenet`` wheel) on CPU.

In: an RGB image (numpy array).  Out: detections ``(label, score, (x1, y1, x2, y2))`` in
pixels.  One forward pass gives both what :mod:`clipcurate.safety.faces` needs (the
``FACE_FEMALE`` / ``FACE_MALE`` boxes) and the NSFW score (the highest score of an exposed
sexual body part).  The session runs on one thread (a worker process per core gives the
parallelism, and one thread keeps results identical whatever the worker count).

License: NudeNet and its weights are AGPL-3.0 (the wheel's LICENSE), unlike this project
(Apache-2.0); it is an optional extra (docs/safety.md).
"""
from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np

# labels whose score is the NSFW score: exposed sexual body parts (not feet, belly, armpits,
# male chest, nor anything covered)
NSFW_LABELS = ("FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED",
               "BUTTOCKS_EXPOSED", "ANUS_EXPOSED")
FACE_LABELS = ("FACE_FEMALE", "FACE_MALE")

Detection = tuple[str, float, tuple[int, int, int, int]]


def _require():
    try:
        import nudenet  # noqa: F401
        import onnxruntime  # noqa: F401
    except ModuleNotFoundError as e:
        raise ImportError(f"the NudeNet detector needs {e.name}: pip install 'clipcurate[safety]'") from None


class NudeNet:
    """The detector, loaded once per process."""

    def __init__(self):
        _require()
        import nudenet
        import onnxruntime
        from nudenet.nudenet import NudeDetector

        self.path = os.path.join(os.path.dirname(nudenet.nudenet.__file__), "320n.onnx")
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.detector = NudeDetector.__new__(NudeDetector)
        self.detector.onnx_session = onnxruntime.InferenceSession(self.path, sess_options=opts,
                                                                  providers=["CPUExecutionProvider"])
        self.detector.input_width = self.detector.input_height = 320
        self.detector.input_name = self.detector.onnx_session.get_inputs()[0].name

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        out = []
        for d in self.detector.detect(bgr):
            x, y, w, h = d["box"]
            out.append((d["class"], round(float(d["score"]), 4), (int(x), int(y), int(x + w), int(y + h))))
        return out

    def identity(self) -> dict[str, Any]:
        from importlib.metadata import version
        with open(self.path, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        return {"name": "nudenet-320n", "kind": "detector", "version": version("nudenet"), "file": "320n.onnx",
                "sha256": sha, "license": "AGPL-3.0"}


def nsfw_score(detections: list[Detection]) -> float:
    """The highest score of an exposed sexual body part, 0.0 when none was detected (NudeNet
    reports detections from 0.2)."""
    return max((s for label, s, _ in detections if label in NSFW_LABELS), default=0.0)


def face_boxes(detections: list[Detection], min_score: float) -> list[tuple[int, int, int, int]]:
    return [box for label, s, box in detections if label in FACE_LABELS and s >= min_score]
