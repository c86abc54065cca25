"""The training engine shared by distillation and transfer: mmengine's Runner made safe
(:mod:`.runner`, :mod:`.checkpoint`), its hooks (:mod:`.hooks`), the uint8 data preprocessor
(:mod:`.preprocessor`), top-k accuracy (:mod:`.metrics`) and classifiers from anywhere
(:mod:`.models`: zoo, timm, torchvision, any builder). Importing it registers them all in
mmengine's registries, with the data pieces of :mod:`ssld_zoo.data.images`."""

import ssld_zoo.data.images  # noqa: F401  (registers ImageDataset, transforms, sampler, collate)
from ssld_zoo.engine.checkpoint import AtomicCheckpointHook, SafeCheckpointHook
from ssld_zoo.engine.hooks import EpochSeedHook, HistoryHook, ModuleEMAHook, find_hook, unwrap
from ssld_zoo.engine.metrics import TopKAccuracy
from ssld_zoo.engine.models import (
    ImportedModel,
    ModelInput,
    TimmModel,
    TorchvisionModel,
    ZooModel,
    build_classifier,
)
from ssld_zoo.engine.preprocessor import NonFiniteLossError, UInt8Preprocessor
from ssld_zoo.engine.runner import (
    SkipEmptyBatchTrainLoop,
    SSLDRunner,
    auto_amp_optim_wrapper,
    prepare_launch,
    resume_checkpoint,
)

__all__ = [
    "SSLDRunner",
    "SkipEmptyBatchTrainLoop",
    "auto_amp_optim_wrapper",
    "prepare_launch",
    "resume_checkpoint",
    "AtomicCheckpointHook",
    "SafeCheckpointHook",
    "EpochSeedHook",
    "HistoryHook",
    "ModuleEMAHook",
    "find_hook",
    "unwrap",
    "TopKAccuracy",
    "ZooModel",
    "TimmModel",
    "TorchvisionModel",
    "ImportedModel",
    "ModelInput",
    "build_classifier",
    "UInt8Preprocessor",
    "NonFiniteLossError",
]
