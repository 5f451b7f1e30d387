"""Before Qt starts: can it open a window here? Without an X display, or without the X11 (xcb) libraries its
xcb platform plugin links against, Qt aborts the process (exit 134) with "could not load the Qt platform
plugin xcb" and a screenful of advice. This says instead, in one line, what is missing and what to install.
It imports no Qt."""
from __future__ import annotations

import ctypes
import os
import sys
from typing import Callable, Mapping

from poselive.errors import PoseliveError

# What the xcb plugin of PyQt5's Qt 5.15 loads (readelf -d libQt5XcbQpa.so.5), with the Debian / Ubuntu
# package of each. A stock desktop has most; libxcb-icccm4, libxcb-keysyms1 and libxcb-xinerama0 are the ones
# found missing on a stock Debian.
XCB_LIBRARIES = {
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
}


def missing_xcb_libraries(load: Callable[[str], object] = ctypes.CDLL) -> list[str]:
    """The libraries of XCB_LIBRARIES that cannot be loaded here."""
    missing = []
    for soname in XCB_LIBRARIES:
        try:
            load(soname)
        except OSError:
            missing.append(soname)
    return missing


def check_qt_platform(environ: Mapping[str, str] = os.environ, platform: str = sys.platform,
                      load: Callable[[str], object] = ctypes.CDLL) -> None:
    """Raise PoseliveError (one line) when Qt would abort for want of a display or xcb libraries. Only where Qt
    uses its xcb plugin: Linux, with QT_QPA_PLATFORM unset or xcb (offscreen and wayland are left to Qt)."""
    if not platform.startswith("linux") or environ.get("QT_QPA_PLATFORM", "xcb").split(":")[0] != "xcb":
        return
    missing = missing_xcb_libraries(load)
    if missing:
        packages = " ".join(XCB_LIBRARIES[m] for m in missing)
        raise PoseliveError(f"the window needs X11 libraries that are missing here ({', '.join(missing)}); on "
                            f"Debian or Ubuntu: sudo apt-get install {packages} (or run without a window: "
                            f"poselive run --out OUT.mp4 --json OUT.jsonl)")
    if not environ.get("DISPLAY"):
        raise PoseliveError("the window needs a display, and $DISPLAY is not set (no X server, or an ssh "
                            "session without -X); run without a window: poselive run --out OUT.mp4 --json OUT.jsonl")
