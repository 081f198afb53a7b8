"""EmotiCrafter's valence-arousal critic: CLIP ViT-B/32 (``clip_b32``, its ``tokenizer`` and ``preprocess``) and the
released linear V-A ``heads``, assembled by ``critic`` (``VACritic``, ``load_va_critic``)."""
