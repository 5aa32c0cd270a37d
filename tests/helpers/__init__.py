"""Helpers shared by several test modules that are not ComfyUI stand-ins (those live in
``tests/comfy_standins``) and not fixtures (those live in ``tests/conftest.py``). Test modules
import them as ``helpers.<module>``; no test module imports another."""
