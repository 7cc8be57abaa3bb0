"""The atlas: every channel of every checkpoint as PNGs + a manifest (job.py, sharded by plan.py), browsable
as a static website (site.py). CLI: python -m lucidtl.atlas render|site."""
from lucidtl.atlas.job import read_manifest, read_settings, render

__all__ = ["read_manifest", "read_settings", "render"]
