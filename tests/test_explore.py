"""`explore` builds controls without running anything, and redraws with the controls' values when one changes."""
import ipywidgets
import pytest

from mavil_lite.teach.explore import explore


def test_nothing_runs_until_a_control_changes_then_every_value_is_passed():
    calls = []
    index = ipywidgets.IntSlider(value=2, min=0, max=5)
    scheme = ipywidgets.Dropdown(options=["random", "structured"], value="random")
    box = explore(lambda index, scheme: calls.append((index, scheme)), index=index, scheme=scheme)
    assert isinstance(box, ipywidgets.VBox)
    assert box.children[:2] == (index, scheme) and isinstance(box.children[2], ipywidgets.Output)
    assert calls == []  # headless execution only creates widgets
    assert index.description == "index" and index.continuous_update is False
    index.value = 4
    scheme.value = "structured"
    assert calls == [(4, "random"), (4, "structured")]


def test_bad_controls_are_refused_with_their_name():
    with pytest.raises(ValueError, match="at least one control"):
        explore(print)
    with pytest.raises(TypeError, match="'ratio'"):
        explore(print, ratio=0.8)
