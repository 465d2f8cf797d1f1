"""LDMI assembled from registered inrkit parts; registered through the ``inrkit.plugins`` entry point."""


def register() -> None:
    from . import model  # noqa: F401  (registers the 'ldmi' model)
    from . import autoencoder_kl, ldm  # noqa: F401  (the 'ldm' model; diffusers' AutoencoderKL parts)
    from . import adversarial  # noqa: F401  (the 'l1_lpips_patchgan' likelihood)
