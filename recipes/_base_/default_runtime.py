# Runtime defaults of the paper recipes: AMP (bf16 where supported, else fp16) and channels-last
# on GPU, fp32 on CPU; a checkpoint every 10 epochs plus the best; validation every 5 epochs.
runtime = dict(
    seed=0,
    amp="auto",
    channels_last="auto",
    compile=False,
    ema=None,
    sync_bn=False,
    checkpoint_interval=10,
    max_keep_ckpts=3,
    val_interval=5,
    log_interval=100,
    tensorboard=True,
)
