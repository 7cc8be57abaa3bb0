"""Regenerate tests/data/torch_*.pth with real PyTorch (needs `pip install torch`; the tests do not).

The state dict of a tiny conv + BN module (as nn.Module.state_dict() pickles it, with _metadata), a view
sharing another tensor's storage at an offset, a transposed (non-contiguous) tensor and half / bfloat16
values, saved in both torch.save layouts. tests/test_torch_pickle.py knows the values by formula.
"""
import os

import torch

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")


def state_dict():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, bias=False), torch.nn.BatchNorm2d(3, eps=1e-3))
    with torch.no_grad():
        net[0].weight.copy_(torch.arange(54, dtype=torch.float32).reshape(3, 2, 3, 3) / 10)
        net[1].weight.copy_(torch.tensor([1.0, 2.0, -1.0]))
        net[1].bias.copy_(torch.tensor([0.1, 0.2, 0.3]))
        net[1].running_mean.copy_(torch.tensor([1.0, 2.0, 3.0]))
        net[1].running_var.copy_(torch.tensor([4.0, 5.0, 6.0]))
    sd = net.state_dict()
    base = torch.arange(20, dtype=torch.float64)
    sd["shared.whole"] = base
    sd["shared.view"] = base[5:11].view(2, 3)
    sd["transposed"] = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()
    sd["half"] = torch.tensor([0.5, -2.0], dtype=torch.float16)
    sd["bfloat"] = torch.tensor([1.5, -3.0], dtype=torch.bfloat16)
    return sd


if __name__ == "__main__":
    sd = state_dict()
    torch.save(sd, os.path.join(HERE, "torch_zip.pth"))
    torch.save(sd, os.path.join(HERE, "torch_legacy.pth"), _use_new_zipfile_serialization=False)
    print("wrote", sorted(os.listdir(HERE)), "with torch", torch.__version__)
