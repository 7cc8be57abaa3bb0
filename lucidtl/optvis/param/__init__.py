"""Image parameterisations: Param modules that own their variables and make an image when called."""
from lucidtl.optvis.param.base import Param
from lucidtl.optvis.param.color import (
    color_correlation_svd_sqrt,
    color_mean,
    constrain_L_inf,
    decorrelate,
    max_norm_svd_sqrt,
    to_valid_rgb,
)
from lucidtl.optvis.param.cppn import composite_activation, cppn, relu_normalized_activation
from lucidtl.optvis.param.images import image
from lucidtl.optvis.param.maco import (
    fit_power_law,
    maco,
    maco_image,
    natural_spectrum,
    natural_statistics,
    power_law_spectrum,
)
from lucidtl.optvis.param.spatial import (
    fft_decoder,
    fft_image,
    laplacian_pyramid_image,
    pixel_image,
    rfft2d_freqs,
)

__all__ = [
    "Param", "image", "pixel_image", "fft_image", "fft_decoder", "rfft2d_freqs", "laplacian_pyramid_image",
    "to_valid_rgb", "decorrelate", "constrain_L_inf", "color_correlation_svd_sqrt", "max_norm_svd_sqrt",
    "color_mean", "cppn", "composite_activation", "relu_normalized_activation",
    "maco", "maco_image", "natural_spectrum", "natural_statistics", "power_law_spectrum", "fit_power_law",
]
