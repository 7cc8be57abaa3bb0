"""StyleGAN2 (config-f) in TF2: generator, official pickles, and latent ascent on a classifier's channel.

Modules: networks (Generator, Config), pkl (load_generator, convert), ascent (ascent, Ascent),
ablation (ablation), compare (side_by_side)."""
from lucidtl.stylegan2.ascent import Ascent, AscentResult
from lucidtl.stylegan2.compare import side_by_side
from lucidtl.stylegan2.networks import Config, Generator
from lucidtl.stylegan2.pkl import convert, load_generator, read_pickle

__all__ = ["Ascent", "AscentResult", "Config", "Generator", "convert", "load_generator", "read_pickle",
           "side_by_side"]
