# expect: reject strict_policy
# problem: linear_relu
# policy: strict
# class: framework ops doing the work under strict without being declared
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x):
        return torch.relu(self.linear(x))
