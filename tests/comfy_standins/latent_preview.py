"""Stand-in for ComfyUI's ``latent_preview``: no previewer (previews are off)."""


def get_previewer(device, latent_format):
    return None
