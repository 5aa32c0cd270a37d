"""Stand-in for ``comfy_api.internal``: the two class re-creations ComfyUI applies to node
classes before it runs them (``PREPARE_CLASS_CLONE`` and the locked class ``execute`` is
called on). Both build a new class from the old one's ``__dict__``, so whatever a node class
does in ``__init_subclass__`` runs again for each copy."""


def shallow_clone_class(cls, new_name=None):
    """A subclass of ``cls`` (and of its bases) holding a copy of ``cls.__dict__``."""
    name = new_name or cls.__name__ + "Clone"
    return type(name, (cls, *cls.__bases__), dict(cls.__dict__))


def lock_class(cls):
    """``cls`` rebuilt (same name and bases, a copy of its ``__dict__``) so that neither the class
    nor its instances accept attribute assignment."""

    class LockedMeta(type(cls)):
        def __setattr__(cls_, name, value):
            raise AttributeError(f"Cannot modify class attribute '{name}' on locked class '{cls_.__name__}'")

    def refuse(self, name, value):
        raise AttributeError(f"Cannot set attribute '{name}' on immutable instance of {type(self).__name__}")

    namespace = dict(cls.__dict__)
    namespace["__setattr__"] = refuse
    return LockedMeta(cls.__name__, cls.__bases__, namespace)
