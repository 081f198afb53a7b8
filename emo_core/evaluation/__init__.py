"""Evaluation: the paper's metrics (``metrics``: V-Error, A-Error, CLIPScore and the 5x5 protocol), the folder
evaluation (``folder``, ``grid_run``) and its command line (``cli``: ``python -m emo_core evaluate``). The critic
model they score with is ``emo_core.critic``."""
