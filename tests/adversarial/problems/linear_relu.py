import torch
import torch.nn as nn


class Model(nn.Module):
    """A linear layer followed by ReLU: has parameters the candidate must inherit."""

    def __init__(self, in_features, out_features):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x):
        return torch.relu(self.linear(x))


batch, in_features, out_features = 32, 64, 48


def get_inputs():
    return [torch.randn(batch, in_features)]


def get_init_inputs():
    return [in_features, out_features]
