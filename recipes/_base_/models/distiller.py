# The distillation model (ssld_zoo/distill/distiller.py): a recipe adds the teacher and the
# student, e.g. teacher=dict(type="ZooModel", name="resnet50_vd_ssld", pretrained=True) or
# dict(type="TimmModel", name="convnext_tiny"); see docs/distillation.md.
model = dict(
    type="Distiller",
    loss=dict(type="SymmetricKL"),
    loss_weight=1.0,
    hard_label_weight=0.0,
    # uint8 crops to the device as [0, 1] floats; channels-last with CUDA. Each model
    # then normalises them with its own mean/std (its weights' own by default).
    data_preprocessor=dict(type="UInt8Preprocessor", channels_last="auto"),
)
