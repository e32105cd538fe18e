"""Labelled boxes drawn on a copy of a photo (Pillow), for ``tinynet detect --draw``."""
from PIL import ImageDraw

from tinynet.preprocess import open_image

# Distinct colours, picked by class id so that a class keeps its colour across photos.
PALETTE = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 190), (0, 128, 128), (170, 110, 40))


def draw_detections(image, detections):
    """An RGB PIL copy of ``image`` (anything open_image takes) with each detection's box and "label score"."""
    canvas = open_image(image).copy()
    pen = ImageDraw.Draw(canvas)
    line = max(1, round(min(canvas.size) / 200))
    for d in detections:
        colour = PALETTE[d.class_id % len(PALETTE)]
        pen.rectangle(d.box, outline=colour, width=line)
        text = f"{d.label} {d.score:.2f}"
        x0, y0 = d.box[0], max(0, d.box[1] - 12)
        left, top, right, bottom = pen.textbbox((x0, y0), text)
        pen.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=colour)
        pen.text((x0, y0), text, fill=(0, 0, 0))
    return canvas
