"""Masks as pictures: PASCAL VOC's palette PNGs and a mask blended over its photo."""
import numpy as np
from PIL import Image

OVERLAY_ALPHA = 0.5  # share of the class colour in an overlay pixel; background (class 0) stays the photo


def voc_palette():
    """PASCAL VOC's colour map, (256, 3) uint8: class c's colour spreads c's bits over the high bits of R, G, B."""
    palette = np.zeros((256, 3), np.uint8)
    for c in range(256):
        value, rgb = c, [0, 0, 0]
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << shift
            value >>= 3
        palette[c] = rgb
    return palette


def mask_image(mask):
    """A palette ("P" mode) PIL image of a uint8 class-id mask: the ids are kept as pixel values."""
    image = Image.fromarray(mask, mode="P")
    image.putpalette(voc_palette().ravel().tolist())
    return image


def overlay_image(photo, mask, alpha=OVERLAY_ALPHA):
    """The RGB photo with each non-background pixel blended towards its class colour."""
    rgb = np.asarray(photo.convert("RGB"), dtype=np.float32)
    colours = voc_palette()[mask].astype(np.float32)
    blend = np.where((mask > 0)[..., None], (1 - alpha) * rgb + alpha * colours, rgb)
    return Image.fromarray(np.rint(blend).astype(np.uint8), mode="RGB")
