"""EmotiCrafter: the Emotion Injection Transformer, its checkpoints, V-A points and prompt-embedding injection."""
