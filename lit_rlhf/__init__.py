"""lit_rlhf: RLHF on Hugging Face language models with PyTorch Lightning and Hydra."""

__version__ = "0.1.0"
