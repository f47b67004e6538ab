"""Large pretrained bases for the PatchVSR adapter. `wan`: diffusers' Wan 2.1 video DiT and its VAE.

Modules: `wan_adapter` (the adapter network on a `WanTransformer3DModel`), `wan_model` (base + adapter + LoRA,
one velocity call, adapter save/load), `wan_vae` (latents through `AutoencoderKLWan`), `wan_upscaler` (the
`Upscaler` driving tiling and sampling in latent space), `wan_train` (training loss and loop). Tiny
random-config Wan folders for tests and trials: `tests/wan_helpers.py`.
"""
