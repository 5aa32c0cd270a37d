"""Stand-in for ``comfy_api.latest.ui``: only what the nodes use."""


class PreviewText:
    def __init__(self, value: str, **kwargs):
        self.values = [value]

    def as_dict(self):
        return {"text": self.values}
