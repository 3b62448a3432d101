"""Model checkpoints: the orbax model directory, the torch-free .pth reader and the PyTorch import."""
