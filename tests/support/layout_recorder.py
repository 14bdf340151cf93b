"""A stand-in for ``UILayout`` that records what a draw() asks for and checks each property
path exists on its data and each operator is registered (a real layout needs a window)."""

from __future__ import annotations

import bpy


_ICONS = {item.identifier for item in bpy.types.UILayout.bl_rna.functions["prop"].parameters["icon"].enum_items}


class LayoutRecorder:
    def __init__(self, calls: list | None = None, errors: list | None = None):
        self.calls = calls if calls is not None else []
        self.errors = errors if errors is not None else []
        self.enabled = True
        self.active = True
        self.alert = False
        self.use_property_split = False
        self.use_property_decorate = False
        self.scale_x = self.scale_y = 1.0

    def _check_icon(self, kwargs) -> None:
        icon = kwargs.get("icon")
        if icon is not None and icon not in _ICONS:
            self.errors.append(f"unknown icon {icon!r}")

    def _child(self, *args, **kwargs) -> "LayoutRecorder":
        return LayoutRecorder(self.calls, self.errors)

    row = column = box = split = grid_flow = column_flow = _child

    def prop(self, data, property_name, **kwargs):
        self.calls.append(("prop", property_name))
        self._check_icon(kwargs)
        rna = getattr(data, "bl_rna", None)
        if rna is None or property_name not in rna.properties:
            self.errors.append(f"prop: {type(data).__name__} has no property {property_name!r}")

    def operator(self, idname, **kwargs):
        self.calls.append(("operator", idname))
        self._check_icon(kwargs)
        module, _, name = idname.partition(".")
        try:
            getattr(getattr(bpy.ops, module), name).get_rna_type()
        except (AttributeError, KeyError):
            self.errors.append(f"operator {idname!r} is not registered")
        return type("OperatorProperties", (), {})()

    def label(self, text="", **kwargs):
        self.calls.append(("label", text))
        self._check_icon(kwargs)
        if not isinstance(text, str):
            self.errors.append(f"label text {text!r} is not a string")

    def progress(self, factor=0.0, type="BAR", text=""):
        self.calls.append(("progress", text))
        if not 0.0 <= factor <= 1.0:
            self.errors.append(f"progress factor {factor} outside 0..1")

    def separator(self, **kwargs):
        self.calls.append(("separator", None))

    def template_list(self, list_type, list_id, data, property_name, active_data, active_property, **kwargs):
        self.calls.append(("template_list", list_type))
        ui_list = getattr(bpy.types, list_type, None)
        if ui_list is None:
            self.errors.append(f"UIList {list_type!r} is not registered")
            return
        for owner, name in ((data, property_name), (active_data, active_property)):
            if name not in owner.bl_rna.properties:
                self.errors.append(f"template_list: {type(owner).__name__} has no property {name!r}")
                return
        items = getattr(data, property_name)
        holder = type("ListSelf", (), {"layout_type": "DEFAULT"})()
        for index, item in enumerate(items):
            ui_list.draw_item(holder, bpy.context, self._child(), data, item, 0, active_data, active_property, index)


def draw_panel(panel_class, data=None) -> LayoutRecorder:
    """Run ``panel_class.draw`` against a recorder; ``data`` stands for ``self`` (e.g. the
    preferences) when the draw reads its own properties."""
    recorder = LayoutRecorder()

    class Self:
        layout = recorder

        def __getattr__(self, name):
            return getattr(data, name)

    panel_class.draw(Self(), bpy.context)
    return recorder
