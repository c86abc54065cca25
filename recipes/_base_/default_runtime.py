# What every recipe runs with unless it says otherwise: the parts of an mmengine Runner config
# that are not the model (models/), the data (datasets/) or the schedule (schedules/), as
# mmpretrain's _base_/default_runtime.py.
# `Runner.from_cfg(Config.fromfile(recipe))` trains a recipe as it stands; `ssld-zoo distill`
# adds what a launch needs (the global batch split over the processes, gloo on CPUs, a work dir).
custom_imports = dict(imports=["ssld_zoo.distill"], allow_failed_imports=False)
runner_type = "SSLDRunner"  # checkpoint loads under weights_only (ssld_zoo/engine/runner.py)

default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=50),
    param_scheduler=dict(type="ParamSchedulerHook"),
    # atomic, resumable checkpoints (ssld_zoo/engine/checkpoint.py), plus the best by top-1
    checkpoint=dict(
        type="AtomicCheckpointHook",
        interval=1,
        by_epoch=True,
        max_keep_ckpts=3,
        save_last=True,
        save_best="top1",
        rule="greater",
    ),
    sampler_seed=dict(type="DistSamplerSeedHook"),
)
# EpochSeedHook: model randomness reseeded per epoch (exact resume); SafeCheckpointHook:
# weights_only-loadable checkpoints; HistoryHook: the per-epoch record of the exported card;
# TeacherOnceHook: the teacher's accuracy is measured on the first validation only. An EMA of
# the student: add dict(type="ModuleEMAHook", momentum=2e-4, begin_iter=0, module="student").
custom_hooks = [
    dict(type="EpochSeedHook"),
    dict(type="SafeCheckpointHook"),
    dict(type="HistoryHook"),
    dict(type="TeacherOnceHook"),
]

env_cfg = dict(
    cudnn_benchmark=True, dist_cfg=dict(backend="nccl"), mp_cfg=dict(mp_start_method="fork")
)
randomness = dict(seed=0, deterministic=False)
log_processor = dict(by_epoch=True)
# TensorBoard events when tensorboard is installed (ssld-zoo distill drops it otherwise)
visualizer = dict(
    type="Visualizer",
    vis_backends=[dict(type="LocalVisBackend"), dict(type="TensorboardVisBackend")],
)
log_level = "INFO"
load_from = None
resume = False
compile = False  # True, or torch.compile kwargs: compile the train step

# Read by `ssld-zoo distill`, not by the Runner: the one-line description `ssld-zoo recipes`
# lists, and the exported student's name (default <arch>_<recipe>) and card description.
description = ""
export = dict(name=None, description=None)
