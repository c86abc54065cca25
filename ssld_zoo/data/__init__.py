"""Data pieces shared by distillation, mining and transfer, below all of them.

- :mod:`.walk`: one cycle-safe walker for image folders (re-exported here);
- :mod:`.shards`: WebDataset-style tar shards as image sources (a member index per shard,
  images named ``<tar>#<member>``);
- :mod:`.samples`: the compact ``(path, label)`` table the datasets keep;
- :mod:`.images`: image streams, the training and evaluation transforms, collation and the
  epoch-keyed sampler (not imported here: it needs mmengine);
- :mod:`.near_duplicates`: pool images that near-duplicate a set of images (``mine --exclude``),
  by perceptual hash confirmed by colour.

Also ships ``imagenet1k_classes.txt`` (package data read by :func:`ssld_zoo.api.class_names`).
"""

from ssld_zoo.data.walk import IMG_EXTENSIONS, FolderWalk, is_image, walk_images

__all__ = ["IMG_EXTENSIONS", "FolderWalk", "is_image", "walk_images"]
