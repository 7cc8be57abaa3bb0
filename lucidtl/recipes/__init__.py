"""Lucid's recipes (lucid.recipes.*), built on lucidtl.optvis; optvis never imports them."""
