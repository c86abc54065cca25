# SSLD stage 1: 360 epochs, SGD momentum 0.9, cosine with warm-up, no label smoothing
# (PaddleClas docs/en/advanced_tutorials/distillation/distillation_en.md; warm-up 5 epochs as the
# PP-HGNetV2 SSLD stage-1 configs). Recipes set lr, weight decay and the global batch.
optimizer = dict(type="SGD", lr=0.4, momentum=0.9, weight_decay=7e-5, nesterov=False)
schedule = dict(epochs=360, warmup_epochs=5, warmup_start_factor=0.01, eta_min=0.0)
