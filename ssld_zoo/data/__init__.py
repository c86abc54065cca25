"""Data pieces shared by distillation and transfer, below both: image streams, the training
and evaluation transforms, collation and the epoch-keyed sampler (:mod:`.images`), plus package
data (``imagenet1k_classes.txt``). Nothing is imported here: :mod:`.images` needs mmengine."""

__all__ = ["images"]
