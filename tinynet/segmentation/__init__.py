"""Semantic segmentation models from weight files: torchvision's LR-ASPP on a dilated MobileNet V3."""
