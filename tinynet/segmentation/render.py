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
    """The RGB photo with each non-background pixel blended towards its class colour. In 8-bit PIL images
    throughout: a 12-megapixel overlay then costs a few photo-sized buffers, not float copies of it."""
    rgb = photo.convert("RGB")
    colours = mask_image(mask).convert("RGB")
    foreground = Image.fromarray(((mask > 0) * np.uint8(255)).astype(np.uint8), mode="L")
    return Image.composite(Image.blend(rgb, colours, alpha), rgb, foreground)
