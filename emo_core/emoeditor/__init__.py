"""EmoEditor: emotion classes and directions, the direction encoder, the emotion predictor, their checkpoints, the
edit schedule, the critic's SSIM and Iterative Emotion Inference."""
