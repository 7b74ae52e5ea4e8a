"""Interactive controls for the teaching notebooks: sliders that redraw a figure the notebook already shows.

Each notebook draws its figure statically first (so headless runs, GitHub and PDF exports keep it), then
wraps the same function in controls with `explore`. Unlike `ipywidgets.interact`, `explore` calls nothing
until a control moves. Executing the cell headless (papermill, nbconvert) therefore only creates the widgets
and never routes output through an `Output` widget, which is what makes such runs hang now and then: a known
nbclient race (jupyter/nbclient#312, jupyter/nbconvert#2029) that froze our test suite in CI.
"""
from __future__ import annotations

from typing import Any, Callable

import ipywidgets
from IPython.display import clear_output, display


def explore(function: Callable[..., Any], **controls: ipywidgets.ValueWidget) -> ipywidgets.VBox:
    """Controls over `function`'s keyword arguments and the figure it returns, redrawn on every change.

    `controls` maps each argument name to a widget whose `value` is passed (a slider, a dropdown, a checkbox).
    Returns the box to display: the controls above an output area that stays empty until the first change,
    because the static figure drawn just above it shows the same starting values.
    """
    if not controls:
        raise ValueError("explore needs at least one control, e.g. index=ipywidgets.IntSlider(...)")
    for name, control in controls.items():
        if not hasattr(control, "value") or not hasattr(control, "observe"):
            raise TypeError(f"control {name!r} must be an ipywidgets widget with a value, got {type(control).__name__}")
        if not control.description:
            control.description = name
        if hasattr(control, "continuous_update"):
            control.continuous_update = False  # one redraw when a slider is released, not one per step of a drag
    output = ipywidgets.Output()

    def redraw(_change=None) -> None:
        with output:
            clear_output(wait=True)  # replace the previous figure only once the new one is ready
            result = function(**{name: control.value for name, control in controls.items()})
            if result is not None:
                display(result)

    for control in controls.values():
        control.observe(redraw, names="value")
    return ipywidgets.VBox([*controls.values(), output])
