"""Training: the pairs CSV, the prompt-feature cache, the objective and the trainers.

Reusable by every trainer: ``config`` (TrainConfig, TrainResult, AMP modes), ``distributed`` (torchrun group, rank
sharding, sums over ranks), ``checkpointing`` (resume states), ``loop`` (the generic epoch/step loop driven by a
``TrainTask``). The EIT trainer is ``eit`` (its task and ``train_eit``); ``cli`` is its command line. The EmoEditor
editor trainer is ``editor`` (``train_editor``; objective ``editor_objective``, features ``editor_features``, files
``editor_io``, diffusers glue ``editor_diffusers``, command line ``editor_cli``).
"""
