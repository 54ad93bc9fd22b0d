"""The torch side: the lesson's models, torch.optim optimizers, fit, the step recorder, checkpoints."""
