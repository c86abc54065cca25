"""Data sources shared by distillation, mining and transfer: walking image folders safely.

Also ships ``imagenet1k_classes.txt`` (package data read by :func:`ssld_zoo.api.class_names`).
"""
from ssld_zoo.data.walk import IMG_EXTENSIONS, FolderWalk, is_image, walk_images

__all__ = ["IMG_EXTENSIONS", "FolderWalk", "is_image", "walk_images"]
