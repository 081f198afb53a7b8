"""Training: an engine that knows no training method, and one folder per trainer that plugs into it.

The engine, reusable by every trainer:
``settings`` (``LoopSettings``, the loop's knobs each trainer's config extends; ``TrainResult``; AMP modes),
``task`` (the ``TrainTask`` base class a trainer subclasses: required model/objective/file methods, hooks with
defaults; ``StepContext``), ``loop`` (the ``Trainer``: epochs or steps of shuffled global batches, validation,
checkpoints, callbacks), ``checkpointing`` (resume states), ``distributed`` (torchrun group, rank sharding, sums over
ranks), ``outputs`` (never-overwrite / pending-until-complete output files), ``naming`` (output names and folders),
``errors`` (``DatasetError``, shared by the dataset readers), ``lora`` (LoRA adapters) and ``stop_flag``.

The trainers, each a folder with the same file names (``data``, ``features``, ``objective``, ``task``, ``cli``):
``eit`` trains EmotiCrafter's Emotion Injection Transformer (``TrainConfig``, ``EITTask``, ``train_eit``);
``editor`` trains EmoEditor's encoder and InstructPix2Pix UNet, in full or as LoRA (``EditorConfig``,
``EditorTask``, ``train_editor``).
"""
