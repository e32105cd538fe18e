"""Semantic segmentation models from weight files: torchvision's LR-ASPP and DeepLab v3 on a dilated MobileNet V3."""
