"""Stand-in for ComfyUI's ``node_helpers``: ``conditioning_set_values`` with the real signature."""


def conditioning_set_values(conditioning, values={}, append=False):  # noqa: B006 - ComfyUI's signature
    """A copy of each ``[tensor, options]`` entry with ``values`` set in its options (appended to
    the existing list values with ``append``)."""
    out = []
    for tensor, options in conditioning:
        options = dict(options)
        for key, value in values.items():
            previous = options.get(key)
            options[key] = previous + value if append and previous is not None else value
        out.append([tensor, options])
    return out
