"""Training: the pairs CSV, the prompt-feature cache, the objective and the trainers.

Reusable by every trainer: ``config`` (TrainConfig, TrainResult, AMP modes), ``distributed`` (torchrun group, rank
sharding, sums over ranks), ``checkpointing`` (resume states), ``loop`` (the generic epoch/step loop driven by a
``TrainTask``). The EIT trainer is ``eit`` (its task and ``train_eit``); ``cli`` is its command line.
"""
