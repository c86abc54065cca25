# SSLD stage-1 data: ImageNet-1k train + ImageNet-22k images mined with the teacher ("ImageNet_5M").
# PaddleClas docs/zh_CN/training/advanced/ssld.md: ImageNet-22k minus images similar to the
# ImageNet-1k val set, scored by the teacher, top-k per ImageNet-1k class, merged with ImageNet-1k
# train (about 5M images). Build the list with:
#   ssld-zoo mine --teacher resnext101_32x16d_wsl --pool /data/imagenet22k --per-class 4000 \
#       --out /data/imagenet22k_mined.txt
# The roots below are placeholders: give yours on the command line, e.g.
#   --cfg-options data.labeled_roots="['/data/imagenet/train']" data.val_root=/data/imagenet/val
data = dict(
    labeled_roots=["/data/imagenet/train"],
    unlabeled_roots=["/data/imagenet22k_mined.txt"],
    val_root="/data/imagenet/val",
    input_size=224,          # SSLD trains and evaluates at 224 (distillation_en.md)
    scale=(0.08, 1.0),
    hflip=0.5,
    interpolation="bilinear",
    eval_transform=dict(input_size=224, resize=256, interpolation="bilinear"),
    num_workers=8,
)
