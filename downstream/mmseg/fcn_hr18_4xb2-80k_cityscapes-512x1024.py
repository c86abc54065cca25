# Baseline twin of fcn_hr18-ssld_4xb2-80k_cityscapes-512x1024.py: PaddleClas's ordinary
# HRNet_W18_C weights (76.9% top-1) instead of the SSLD ones (81.6%).
_base_ = "./fcn_hr18-ssld_4xb2-80k_cityscapes-512x1024.py"
model = dict(backbone=dict(weights="hrnet_w18_c"))
