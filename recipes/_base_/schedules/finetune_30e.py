# SSLD stage 2: a short fine-tune of the stage-1 student on ImageNet-1k with a small lr
# (PaddleClas distillation_en.md: 30 epochs for most students, 60 for ResNet50_vd).
optimizer = dict(type="SGD", lr=0.004, momentum=0.9, weight_decay=7e-5, nesterov=False)
schedule = dict(epochs=30, warmup_epochs=0, eta_min=0.0)
