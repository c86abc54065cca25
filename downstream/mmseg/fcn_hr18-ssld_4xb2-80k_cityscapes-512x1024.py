# FCN on HRNet-W18 (all four branches, resized and concatenated) on Cityscapes, 80k iterations,
# with PaddleClas's HRNet_W18_C SSLD weights (81.6% ImageNet top-1; ordinary weights 76.9%).
# The zoo's HRNet outputs are the four parallel branches of its last stage (18/36/72/144
# channels at strides 4/8/16/32), exactly what mmseg's HRNet FCN head takes.
# Baseline twin: fcn_hr18_4xb2-80k_cityscapes-512x1024.py
_base_ = ["mmseg::hrnet/fcn_hr18_4xb2-80k_cityscapes-512x1024.py", "./_base_/ssld_backbone.py"]

model = dict(pretrained=None, backbone=dict(_base_.pop("ssld_backbone"), model="hrnet_w18_c"))
