"""Network architectures (plain torch, no torchvision)."""
