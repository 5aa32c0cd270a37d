"""Stand-in for ``comfy_api.latest.ui``: only what the nodes use."""


class PreviewText:
    def __init__(self, value: str, **kwargs):
        self.values = [value]

    def as_dict(self):
        return {"text": self.values}


class PreviewImage:
    """Real signature; records the image's shape instead of writing a temp PNG."""

    def __init__(self, image, animated: bool = False, cls=None, **kwargs):
        self.values = [{"filename": f"preview_{i}.png", "subfolder": "", "type": "temp", "shape": list(im.shape)}
                       for i, im in enumerate(image)]
        self.animated = animated

    def as_dict(self):
        return {"images": self.values, "animated": (self.animated,)}
