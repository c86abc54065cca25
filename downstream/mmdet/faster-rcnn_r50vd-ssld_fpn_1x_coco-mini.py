# Faster R-CNN R50-vd FPN with the SSLD backbone on coco_mini: real COCO-2017 photos and
# annotations (178 train / 50 val images, 80 classes), small enough to train and evaluate on a
# CPU. Data root: $SSLD_ZOO_TEST_DATA/coco_mini (default ../shared/data/coco_mini, relative to
# the working directory), or --cfg-options data_root=... . CPU timing and expected numbers:
# docs/downstream.md.
#   mim train mmdet downstream/mmdet/faster-rcnn_r50vd-ssld_fpn_1x_coco-mini.py --gpus 0 --launcher none
# Baseline twin: faster-rcnn_r50vd_fpn_1x_coco-mini.py
_base_ = "./faster-rcnn_r50vd-ssld_fpn_1x_coco.py"

data_root = "{{$SSLD_ZOO_TEST_DATA:../shared/data}}/coco_mini/"
# Half of COCO's 1333x800: coco_mini's photos are at most 640 px, and a CPU is slow.
img_scale = (640, 400)

train_pipeline = [
    dict(type="LoadImageFromFile", backend_args=None),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(type="Resize", scale=img_scale, keep_ratio=True),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile", backend_args=None),
    dict(type="Resize", scale=img_scale, keep_ratio=True),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(
        type="PackDetInputs",
        meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor"),
    ),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        ann_file="annotations/instances_train.json",
        data_prefix=dict(img="images/train/"),
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        ann_file="annotations/instances_val.json",
        data_prefix=dict(img="images/val/"),
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + "annotations/instances_val.json")
test_evaluator = val_evaluator

# 12 epochs of 89 iterations at batch 2: lr scaled from 0.02 @ 16 images; short warm-up.
train_cfg = dict(max_epochs=12, val_interval=12)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=100),
    dict(type="MultiStepLR", begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
optim_wrapper = dict(optimizer=dict(lr=0.0025))
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=12))
