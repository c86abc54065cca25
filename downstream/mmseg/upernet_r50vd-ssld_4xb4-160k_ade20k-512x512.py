# UperNet on ADE20K, 160k iterations, with PaddleClas's ResNet50_vd SSLD weights (83.0% ImageNet top-1). 
# Baseline twin (ResNet50_vd's ordinary weights, 79.1%): upernet_r50vd_4xb4-160k_ade20k-512x512.py
_base_ = 'mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py'

custom_imports = dict(imports=['ssld_zoo.adapters.mmlab'], allow_failed_imports=False)

model = dict(
    pretrained=None,  # the base's ResNetV1c checkpoint; weights come from the zoo instead
    backbone=dict(
        _delete_=True,
        type='SSLDBackbone',
        model='resnet50_vd',
        weights='ssld',
        out_indices=(0, 1, 2, 3),
        norm_eval=False))

# SyncBN across GPUs for the zoo backbone too (ignored in a single-process run).
sync_bn = 'torch'
