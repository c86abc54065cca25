# How the paper recipes run, where it differs from recipes/_base_/defaults.py (which already
# has AMP = bf16 where supported, else fp16, and channels-last on GPU; fp32 on CPU): a
# checkpoint every 10 epochs plus the best, validation every 5 epochs, a log line every 100 steps.
runtime = dict(checkpoint_interval=10, val_interval=5, log_interval=100)
