"""Neural-network building blocks on top of the autograd engine."""
from .layers import MLP, Block, CausalSelfAttention, Dropout, Embedding, LayerNorm, Linear, RMSNorm
from .module import Module, ModuleList, Parameter

__all__ = ["Module", "ModuleList", "Parameter", "Linear", "Embedding", "LayerNorm", "RMSNorm",
           "Dropout", "MLP", "CausalSelfAttention", "Block"]
