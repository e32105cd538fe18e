"""torchvision's SemanticSegmentation preset: shorter side resized to 520 (PIL bilinear), ImageNet normalisation,
no crop. Same float32 operations in the same order as torchvision's ToTensor and Normalize."""
import numpy as np
from PIL import Image

from tinynet.preprocess import normalise_rows_f32, open_image


def resized_size(height, width, shorter):
    """torchvision F.resize(size=shorter): the shorter side becomes ``shorter``, the longer one truncated."""
    if height <= width:
        return shorter, int(shorter * width / height)
    return int(shorter * height / width), shorter


def torchvision_segmentation_input(image, shorter, mean, std):
    """One image -> ((1, H, W, 3) float32 NHWC, (original height, original width))."""
    photo = open_image(image)
    height, width = resized_size(photo.height, photo.width, shorter)
    rgb = np.asarray(photo.resize((width, height), Image.BILINEAR), dtype=np.float32)
    x = normalise_rows_f32(rgb / np.float32(255), mean, std)
    return x[None], (photo.height, photo.width)
