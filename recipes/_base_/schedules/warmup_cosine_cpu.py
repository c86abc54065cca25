# The schedule of the small CPU reproductions (recipes/cifar10/, recipes/imagenette/):
# SGD with Nesterov momentum at lr 0.1 (fp32 on a CPU, AMP on a GPU), a linear warm-up from 10%
# over the first epoch, then cosine to zero; set train_cfg.max_epochs and the weight decay.
optim_wrapper = dict(
    type="auto_amp_optim_wrapper",
    amp="auto",
    optimizer=dict(type="SGD", lr=0.1, momentum=0.9, nesterov=True),
)
param_scheduler = [
    dict(
        type="LinearLR", start_factor=0.1, by_epoch=True, begin=0, end=1, convert_to_iter_based=True
    ),
    dict(type="CosineAnnealingLR", eta_min=0.0, by_epoch=True, begin=1, convert_to_iter_based=True),
]
train_cfg = dict(type="SkipEmptyBatchTrainLoop")
val_cfg = dict()
