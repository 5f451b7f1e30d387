"""Where Qt would abort `poselive gui` for want of X11 libraries or a display, the command says in one line what
is missing and what to install, before Qt starts (checked with a stand-in loader, so on any machine)."""
from __future__ import annotations

import pytest

from poselive.errors import PoseliveError
from poselive.gui.platform_check import XCB_LIBRARIES, check_qt_platform, missing_xcb_libraries


def loader(missing: set[str]):
    def load(soname: str):
        if soname in missing:
            raise OSError(f"{soname}: cannot open shared object file")
        return object()
    return load


def test_missing_xcb_libraries_are_named_with_their_packages():
    load = loader({"libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-xinerama.so.0"})
    assert missing_xcb_libraries(load) == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-xinerama.so.0"]
    with pytest.raises(PoseliveError) as err:
        check_qt_platform({"DISPLAY": ":0"}, "linux", load)
    message = str(err.value)
    assert "\n" not in message
    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 " in message


def test_no_display_is_said_and_other_platforms_are_left_to_qt():
    with pytest.raises(PoseliveError, match=r"needs a display, and \$DISPLAY is not set"):
        check_qt_platform({}, "linux", loader(set()))
    nothing = loader(set(XCB_LIBRARIES))
    check_qt_platform({}, "darwin", nothing)
    check_qt_platform({"QT_QPA_PLATFORM": "offscreen"}, "linux", nothing)
    check_qt_platform({"DISPLAY": ":0"}, "linux", loader(set()))
