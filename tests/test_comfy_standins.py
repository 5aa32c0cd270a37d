"""The ComfyUI stand-ins (tests/comfy_standins) held to the real ComfyUI in COMFYUI_PATH.

Each stand-in module is loaded by file path under another name (``standin_<name>``: the real
modules have the same names) and compared with the real module of the same name: every
public function, class, method and constant it defines must exist there, methods and
functions with the same parameter names, kinds and defaults for the parameters the
stand-in declares (its positional ones in the same places); name lists (``KSampler.SAMPLERS``)
must be subsets of the real ones. The tiny objects of ``tiny_models`` are held to the real
classes they name in ``STANDS_IN_FOR``, and the class clones ComfyUI makes of node classes
(``shallow_clone_class``, ``lock_class``, ``PREPARE_CLASS_CLONE``) must come out the same from
both. Without COMFYUI_PATH these tests skip; only the import-hygiene check runs everywhere.
"""

from __future__ import annotations
import __future__

import ast
import asyncio
import dataclasses
import importlib
import importlib.util
import inspect
import os
import sys
import types
from pathlib import Path

import pytest

STANDINS = Path(__file__).resolve().parent / "comfy_standins"
PREFIX = "standin_"
TINY_MODELS = "tiny_models"  # not a ComfyUI module: held to the classes it names instead
COMFYUI = bool(os.environ.get("COMFYUI_PATH"))
needs_comfyui = pytest.mark.skipif(not COMFYUI, reason="COMFYUI_PATH is not set: no real ComfyUI to compare with")

# Dunder methods a stand-in may define that callers use; other dunders are class machinery.
CALLED_DUNDERS = {"__init__", "__call__", "__getattr__", "__getitem__", "__enter__", "__exit__", "__iter__",
                  "__len__"}
# Module values that depend on the installation (paths): compared by type only.
PER_INSTALL = {"folder_paths": {"base_path", "models_dir", "output_directory", "input_directory", "temp_directory"}}
MISSING = object()


def standin_module_names() -> list[str]:
    """``comfy/samplers.py`` -> ``comfy.samplers``, ``comfy_api/__init__.py`` -> ``comfy_api``."""
    names = []
    for path in sorted(STANDINS.rglob("*.py")):
        parts = list(path.relative_to(STANDINS).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts != [TINY_MODELS]:
            names.append(".".join(parts))
    return names


def top_level_names() -> set[str]:
    return {name.split(".")[0] for name in standin_module_names()}


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    """Every stand-in module, loaded from tests/comfy_standins as ``standin_<name>``."""
    saved_base = os.environ.get("EMOTION_DIRECTOR_STANDIN_BASE")
    os.environ["EMOTION_DIRECTOR_STANDIN_BASE"] = str(tmp_path_factory.mktemp("standin_base"))  # folder_paths
    before = set(sys.modules)
    try:
        for top in sorted(top_level_names()):
            package = STANDINS / top / "__init__.py"
            path = package if package.is_file() else STANDINS / f"{top}.py"
            search = [str(path.parent)] if package.is_file() else None
            spec = importlib.util.spec_from_file_location(PREFIX + top, path, submodule_search_locations=search)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        # submodules through their package's __path__, so the stand-ins' relative imports see each other
        yield {name: importlib.import_module(PREFIX + name) for name in standin_module_names()}
    finally:
        for name in set(sys.modules) - before:
            if name.startswith(PREFIX):
                del sys.modules[name]
        if saved_base is None:
            os.environ.pop("EMOTION_DIRECTOR_STANDIN_BASE", None)
        else:
            os.environ["EMOTION_DIRECTOR_STANDIN_BASE"] = saved_base


# --- comparison ---------------------------------------------------------------------------------------------

def _is_standin(obj) -> bool:
    return getattr(obj, "__module__", "").startswith(PREFIX)


def _kind(raw) -> str:
    if isinstance(raw, classmethod):
        return "classmethod"
    if isinstance(raw, staticmethod):
        return "staticmethod"
    if isinstance(raw, property):
        return "property"
    if inspect.isclass(raw):
        return "class"
    if callable(raw):
        return "function"
    return "value"


def _same_default(a, b) -> bool:
    if a is b:
        return True
    try:
        return type(a) is type(b) and bool(a == b)
    except (TypeError, ValueError, RuntimeError):  # values without a plain truth (tensors)
        return False


def signature_problems(standin, real) -> list[str]:
    """The stand-in's parameters must be the real ones: same names, kinds and defaults, its
    positional parameters in the real positions; ``*args``/``**kwargs`` only where the real has them.
    A positional-only stand-in parameter is matched by position alone (the real name varies:
    ``optimized_attention`` is ``(q, k, v, ...)`` or ``(query, key, value, ...)`` by backend)."""
    try:
        ours, theirs = inspect.signature(standin), inspect.signature(real)
    except (TypeError, ValueError) as error:
        return [f"no signature to compare ({error})"]
    real_params = theirs.parameters
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    problems = []
    our_positional = [p for p in ours.parameters.values() if p.kind in positional]
    real_positional = [p.name for p in real_params.values() if p.kind in positional]
    if [p.name for p in our_positional] != real_positional[:len(our_positional)] and not (
            len(our_positional) <= len(real_positional) and all(
                p.kind == p.POSITIONAL_ONLY or p.name == name for p, name in zip(our_positional, real_positional))):
        problems.append(f"positional parameters {[p.name for p in our_positional]}, ComfyUI's {real_positional}")
    for p in ours.parameters.values():
        if p.kind == p.POSITIONAL_ONLY:
            continue  # matched by position above
        if p.kind in variadic:
            if not any(q.kind == p.kind for q in real_params.values()):
                problems.append(f"{p} but ComfyUI has no {'*args' if p.kind == p.VAR_POSITIONAL else '**kwargs'}")
            continue
        q = real_params.get(p.name)
        if q is None:
            problems.append(f"parameter {p.name!r} is not ComfyUI's (ComfyUI: {theirs})")
        elif q.kind != p.kind:
            problems.append(f"parameter {p.name!r} is {p.kind.description}, ComfyUI's is {q.kind.description}")
        elif not _same_default(p.default, q.default):
            problems.append(f"parameter {p.name!r} defaults to {p.default!r}, ComfyUI's to {q.default!r}")
    return problems


def value_problems(ours, theirs, where: str) -> list[str]:
    if isinstance(ours, (list, tuple, set, frozenset)):
        try:
            missing = [v for v in ours if v not in theirs]
        except TypeError:
            return [f"{where}: {ours!r} against ComfyUI's {theirs!r}"]
        return [f"{where}: {missing} are not in ComfyUI's {theirs!r}"] if missing else []
    if isinstance(ours, dict):
        if not isinstance(theirs, dict):
            return [f"{where}: a dict, ComfyUI's is {type(theirs).__name__}"]
        missing = sorted(set(ours) - set(theirs))
        return [f"{where}: keys {missing} are not ComfyUI's"] if missing else []
    if isinstance(ours, types.SimpleNamespace):
        return [f"{where}.{k}: {v!r}, ComfyUI's {getattr(theirs, k, MISSING)!r}"
                for k, v in vars(ours).items() if not _same_default(v, getattr(theirs, k, MISSING))]
    if isinstance(ours, (bool, int, float, str)):
        return [] if ours == theirs else [f"{where}: {ours!r}, ComfyUI's {theirs!r}"]
    return [f"{where}: no rule to compare a {type(ours).__name__} (add one to tests/test_comfy_standins.py)"]


def class_problems(ours: type, theirs, where: str, visiting: frozenset = frozenset()) -> list[str]:
    if not inspect.isclass(theirs):
        return [f"{where}: a class, ComfyUI's is {theirs!r}"]
    if (ours, theirs) in visiting:  # nested classes refer back (Int.Input.Parent is Int)
        return []
    visiting = visiting | {(ours, theirs)}
    problems = []
    real_mro_names = {k.__name__ for k in theirs.__mro__}
    for base in ours.__mro__[1:]:
        if _is_standin(base) and base.__name__ not in real_mro_names:
            problems.append(f"{where}: derives from {base.__name__}, ComfyUI's does not")
    fields = set()
    if dataclasses.is_dataclass(ours):
        if not dataclasses.is_dataclass(theirs):
            problems.append(f"{where}: a dataclass, ComfyUI's is not")
        else:
            fields = {f.name for f in dataclasses.fields(ours)}
            missing = fields - {f.name for f in dataclasses.fields(theirs)}
            problems += [f"{where}.{name}: not a field of ComfyUI's" for name in sorted(missing)]
    seen = set(fields)
    for klass in ours.__mro__:
        if not _is_standin(klass):
            continue
        for name, raw in vars(klass).items():
            if name in seen or (name.startswith("_") and name not in CALLED_DUNDERS):
                continue
            seen.add(name)
            problems += member_problems(raw, inspect.getattr_static(theirs, name, MISSING), f"{where}.{name}",
                                        visiting)
    return problems


def member_problems(raw, real_raw, where: str, visiting: frozenset = frozenset()) -> list[str]:
    """``raw``/``real_raw`` as found in a class or module ``__dict__`` (descriptors unresolved)."""
    if real_raw is MISSING:
        return [f"{where}: not in ComfyUI"]
    if raw is None:
        return []  # a slot filled at run time (PROGRESS_BAR_HOOK, Output.Parent): existing is enough
    kind, real_kind = _kind(raw), _kind(real_raw)
    if kind == "class":
        return class_problems(raw, real_raw, where, visiting)
    if kind != real_kind:
        return [f"{where}: a {kind}, ComfyUI's is a {real_kind}"]
    if kind in ("classmethod", "staticmethod"):
        raw, real_raw = raw.__func__, real_raw.__func__
    if kind in ("function", "classmethod", "staticmethod"):
        return [f"{where}: {problem}" for problem in signature_problems(raw, real_raw)]
    if kind == "property":
        return []
    return value_problems(raw, real_raw, where)


def module_problems(ours: types.ModuleType, theirs: types.ModuleType, name: str) -> list[str]:
    problems = []
    for attr, value in vars(ours).items():
        where = f"{name}.{attr}"
        if attr.startswith("_") or isinstance(value, __future__._Feature):
            continue
        if isinstance(value, types.ModuleType):
            if value.__name__ == f"{ours.__name__}.{attr}":
                continue  # the package's own submodule: compared as a module of its own
            if value.__name__.startswith(PREFIX):  # a stand-in module it exposes under another name (io, ui)
                real = getattr(theirs, attr, None)
                if not isinstance(real, types.ModuleType) or real.__name__ != value.__name__[len(PREFIX):]:
                    problems.append(f"{where}: {value.__name__[len(PREFIX):]}, ComfyUI's is {real!r}")
            continue  # a library it imports (torch, os)
        if (inspect.isclass(value) or inspect.isfunction(value)) and not _is_standin(value):
            continue  # imported from elsewhere (dataclass, SimpleNamespace)
        real = vars(theirs).get(attr, MISSING)
        if attr in PER_INSTALL.get(name, ()):
            if real is MISSING or type(real) is not type(value):
                problems.append(f"{where}: a {type(value).__name__}, ComfyUI's {real!r}")
            continue
        problems += member_problems(value, real, where)
    return problems


# --- the checks ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", standin_module_names())
def test_standins_import_each_other_relatively(name):
    """A stand-in importing ``comfy...`` absolutely would, in the comparison below, bind to the
    real module instead of its stand-in sibling (and, in the node tests, mix the two worlds)."""
    path = STANDINS / Path(*name.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    tops = top_level_names()
    absolute = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            absolute += [a.name for a in node.names if a.name.split(".")[0] in tops]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.split(".")[0] in tops:
            absolute.append(node.module)
    assert not absolute, f"{name} imports {absolute} absolutely: use a relative import"


@needs_comfyui
@pytest.mark.parametrize("name", standin_module_names())
def test_standin_module_matches_comfyui(name, standins):
    real = importlib.import_module(name)
    problems = module_problems(standins[name], real, name)
    assert not problems, "the stand-in drifted from ComfyUI:\n" + "\n".join(problems)


@needs_comfyui
def test_tiny_models_have_the_real_classes_methods():
    """Each tiny object's methods are the real class's (its constructor builds a tiny model, so
    it is not compared); the conveniences it declares are really absent from the real class."""
    from comfy_standins import tiny_models

    problems = []
    classes = {n: c for n, c in vars(tiny_models).items()
               if inspect.isclass(c) and c.__module__ == tiny_models.__name__ and not n.startswith("_")}
    undeclared = set(classes) - set(tiny_models.STANDS_IN_FOR)
    assert not undeclared, f"tiny_models classes without a STANDS_IN_FOR entry: {sorted(undeclared)}"
    for name, (dotted, conveniences) in tiny_models.STANDS_IN_FOR.items():
        module_name, _, class_name = dotted.rpartition(".")
        real = getattr(importlib.import_module(module_name), class_name, MISSING)
        if not inspect.isclass(real):
            problems.append(f"{name}: ComfyUI has no class {dotted}")
            continue
        for attr in sorted(conveniences):
            if inspect.getattr_static(real, attr, MISSING) is not MISSING:
                problems.append(f"{name}.{attr}: listed as a test convenience but {dotted} has it")
        for attr, raw in vars(classes[name]).items():
            if attr == "__init__" or attr in conveniences or not callable(raw) and not isinstance(raw, (
                    classmethod, staticmethod)):
                continue
            if attr.startswith("_") and attr not in CALLED_DUNDERS:
                continue
            problems += member_problems(raw, inspect.getattr_static(real, attr, MISSING), f"{name}.{attr}")
    assert not problems, "tiny models drifted from ComfyUI:\n" + "\n".join(problems)


def _describe(clone: type, original: type) -> dict:
    locked = None
    try:
        clone.probe_attribute = 1
    except AttributeError as error:
        locked = str(error)
    else:
        delattr(clone, "probe_attribute")
    return {"name": clone.__name__, "bases": clone.__bases__, "mro": [k.__name__ for k in clone.__mro__],
            "dict": sorted(k for k in vars(clone) if k not in ("__dict__", "__weakref__")),
            "metaclass_bases": [k.__name__ for k in type(clone).__mro__],
            "execute_is_the_original": clone.execute.__func__ is original.execute.__func__,
            "subclass": issubclass(clone, original), "locked": locked}


@needs_comfyui
def test_class_clones_match_comfyui(standins, pack, comfy_models_dir):
    """ComfyUI clones a node class per execution and locks the clone for the call; the pack's
    CheckedNode classes must come out of the stand-in's functions exactly as out of ComfyUI's."""
    import comfy_api.internal as real
    from comfy_api.latest import io as real_io
    from emotion_director_pack.nodes import EmotionDirectorExtension
    from emotion_director_pack.nodes.input_checks import CheckedNode

    ours, our_io = standins["comfy_api.internal"], standins["comfy_api.latest._io"]
    hidden = {"UNIQUE_ID": "7", "PROMPT": {"7": {"class_type": "X"}}, "EXTRA_PNGINFO": {"workflow": {}}}
    classes = asyncio.run(EmotionDirectorExtension().get_node_list())
    assert classes and all(issubclass(cls, CheckedNode) for cls in classes)
    for cls in classes:
        assert _describe(ours.shallow_clone_class(cls), cls) == _describe(real.shallow_clone_class(cls), cls)
        named = ours.shallow_clone_class(cls, "Renamed"), real.shallow_clone_class(cls, "Renamed")
        assert _describe(named[0], cls) == _describe(named[1], cls)
        clone = real.shallow_clone_class(cls)
        assert _describe(ours.lock_class(clone), clone) == _describe(real.lock_class(clone), clone)
        our_clone = our_io.ComfyNode.__dict__["PREPARE_CLASS_CLONE"].__func__(cls, hidden)
        real_clone = real_io.ComfyNode.PREPARE_CLASS_CLONE.__func__(cls, hidden)
        assert _describe(our_clone, cls) == _describe(real_clone, cls)
        for key in ("unique_id", "prompt", "extra_pnginfo", "dynprompt", "auth_token_comfy_org", "not_requested"):
            assert getattr(our_clone.hidden, key) == getattr(real_clone.hidden, key), key
