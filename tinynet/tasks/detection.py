"""Detection results: torchvision SSD head outputs -> ``Detection`` records in the original image's pixels."""
from dataclasses import dataclass

from tinynet.detection.postprocess import torchvision_ssd


@dataclass(frozen=True)
class Detection:
    label: str
    class_id: int
    score: float
    box: tuple  # (x0, y0, x1, y1) in the original image's pixels

    def as_dict(self):
        return {"label": self.label, "class_id": self.class_id, "score": self.score, "box": list(self.box)}


def torchvision_detections(cls_logits, bbox_regression, anchors, geometry, names, score_threshold=0.001, top=None):
    """One image's detections, best first: torchvision's postprocess (softmax, score threshold, top-300 per class,
    class-wise NMS 0.55, 300 per image), boxes mapped back with ``geometry`` (tinynet.geometry.Geometry)."""
    boxes, scores, labels = torchvision_ssd(cls_logits, bbox_regression, anchors, geometry.input_size,
                                            score_threshold=score_threshold)
    boxes = geometry.boxes_to_original(boxes)
    count = len(scores) if top is None else min(top, len(scores))
    return [Detection(names[int(labels[i])], int(labels[i]), float(scores[i]), tuple(float(v) for v in boxes[i]))
            for i in range(count)]
