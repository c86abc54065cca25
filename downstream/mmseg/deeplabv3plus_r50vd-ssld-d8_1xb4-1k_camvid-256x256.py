# DeepLabV3+ (output stride 8) with PaddleClas's ResNet50_vd SSLD weights on CamVid: real
# street scenes, 11 classes + void (mask value 11, ignored), 367 train / 101 val images at
# 480x360. Sized for a CPU: 256x256 crops, batch 4, 1,000 iterations, plain BatchNorm.
# Data root: $SSLD_ZOO_TEST_DATA/camvid (default ../shared/data/camvid, relative to the working
# directory), or --cfg-options data_root=... .
#   mim train mmseg downstream/mmseg/deeplabv3plus_r50vd-ssld-d8_1xb4-1k_camvid-256x256.py --gpus 0 --launcher none
# Baseline twin: deeplabv3plus_r50vd-d8_1xb4-1k_camvid-256x256.py
_base_ = "./deeplabv3plus_r50vd-ssld-d8_4xb2-80k_cityscapes-512x1024.py"

data_root = "{{$SSLD_ZOO_TEST_DATA:../shared/data}}/camvid/"
crop_size = (256, 256)
num_classes = 11
void = 11  # CamVid's "Unlabelled": ignored by the loss, the metric and the padding
norm_cfg = dict(type="BN", requires_grad=True)
metainfo = dict(
    classes=(
        "Sky",
        "Building",
        "Pole",
        "Road",
        "Pavement",
        "Tree",
        "SignSymbol",
        "Fence",
        "Car",
        "Pedestrian",
        "Bicyclist",
    ),
    palette=[
        [128, 128, 128],
        [128, 0, 0],
        [192, 192, 128],
        [128, 64, 128],
        [60, 40, 222],
        [128, 128, 0],
        [192, 128, 128],
        [64, 64, 128],
        [64, 0, 128],
        [64, 64, 0],
        [0, 128, 192],
    ],
)

model = dict(
    data_preprocessor=dict(size=crop_size, seg_pad_val=void),
    decode_head=dict(num_classes=num_classes, ignore_index=void, norm_cfg=norm_cfg),
    auxiliary_head=dict(num_classes=num_classes, ignore_index=void, norm_cfg=norm_cfg),
)

train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations"),
    dict(type="RandomResize", scale=(480, 360), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCrop", crop_size=crop_size, cat_max_ratio=0.75, ignore_index=void),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PhotoMetricDistortion"),
    dict(type="PackSegInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=(480, 360), keep_ratio=True),
    dict(type="LoadAnnotations"),
    dict(type="PackSegInputs"),
]
dataset = dict(
    type="BaseSegDataset",
    data_root=data_root,
    metainfo=metainfo,
    img_suffix=".jpg",
    seg_map_suffix=".png",
    reduce_zero_label=False,
    ignore_index=void,
)
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    dataset=dict(
        _delete_=True,
        **dataset,
        ann_file="train.txt",
        pipeline=train_pipeline,
        data_prefix=dict(img_path="images/train", seg_map_path="masks/train"),
    ),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        **dataset,
        ann_file="val.txt",
        pipeline=test_pipeline,
        data_prefix=dict(img_path="images/val", seg_map_path="masks/val"),
    ),
)
test_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        **dataset,
        ann_file="test.txt",
        pipeline=test_pipeline,
        data_prefix=dict(img_path="images/test", seg_map_path="masks/test"),
    ),
)
val_evaluator = dict(type="IoUMetric", iou_metrics=["mIoU"], ignore_index=void)
test_evaluator = val_evaluator

train_cfg = dict(type="IterBasedTrainLoop", max_iters=1000, val_interval=1000)
param_scheduler = [
    dict(type="PolyLR", eta_min=1e-4, power=0.9, begin=0, end=1000, by_epoch=False),
]
optim_wrapper = dict(optimizer=dict(lr=0.01))
default_hooks = dict(
    logger=dict(interval=20, log_metric_by_epoch=False),
    checkpoint=dict(by_epoch=False, interval=1000),
)
