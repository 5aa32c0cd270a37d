"""Stand-in for ``comfy_api.internal``: the two class re-creations ComfyUI applies to node
classes before it runs them (``PREPARE_CLASS_CLONE`` and the locked class ``execute`` is
called on). Both build a new class from the old one's ``__dict__``, so whatever a node class
does in ``__init_subclass__`` runs again for each copy."""


def copy_class(cls: type) -> type:
    """A subclass of ``cls`` with the same name, module and doc and a copy of its attributes."""
    if cls is None:
        return None
    namespace = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__", "__module__", "__doc__")}
    copy = type(cls.__name__, (cls,), namespace)
    copy.__module__, copy.__doc__ = cls.__module__, cls.__doc__
    return copy


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
