"""Sidebar panels and lists: they only draw."""

from . import sidebar

_MODULES = (sidebar,)


def register():
    for module in _MODULES:
        module.register()


def unregister():
    for module in reversed(_MODULES):
        module.unregister()
