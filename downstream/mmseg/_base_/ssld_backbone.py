# The zoo backbone as the segmentation configs use it: BN statistics trained (norm_eval=False)
# and synchronised across GPUs (sync_bn, ignored in a single-process run). Building block, not a
# config to train:
#     _base_ = ['mmseg::upernet/upernet_r50_4xb2-80k_cityscapes-512x1024.py',
#               './_base_/ssld_backbone.py']
#     model = dict(pretrained=None, backbone=_base_.pop('ssld_backbone'))
# (the name of its own, and the pop, as in ../../_base_/ssld_backbone.py).
_base_ = "../../_base_/ssld_backbone.py"

ssld_backbone = dict(norm_eval=False)

sync_bn = "torch"
