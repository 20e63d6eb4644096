"""Every method module in this package registers itself on import (see base.register_method)."""
from __future__ import annotations

import importlib
import pkgutil

from .base import (FAMILIES, METHODS, Method, MethodConfig, by_family, create_method, family_label, get_method,
                   register_method)

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["FAMILIES", "METHODS", "Method", "MethodConfig", "by_family", "create_method", "family_label",
           "get_method", "register_method"]
