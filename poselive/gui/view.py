"""The video area of the window, and the numpy <-> QImage conversions the GUI needs.

QImage (unlike QPixmap) may be built on any thread, so the worker converts each overlay and the UI thread only
paints it."""
from __future__ import annotations

import numpy as np
from PyQt5.QtCore import QRect, QRectF, Qt
from PyQt5.QtGui import QColor, QFont, QImage, QPainter, QPalette
from PyQt5.QtWidgets import QLabel, QSizePolicy, QWidget


def bgr_to_qimage(image: np.ndarray) -> QImage:
    """(H, W, 3) uint8 BGR -> a QImage that owns its pixels (safe to pass between threads)."""
    image = np.ascontiguousarray(image, np.uint8)
    h, w = image.shape[:2]
    return QImage(image.data, w, h, image.strides[0], QImage.Format_BGR888).copy()


def qimage_to_bgr(image: QImage) -> np.ndarray:
    """Any QImage -> (H, W, 3) uint8 BGR copy."""
    img = image.convertToFormat(QImage.Format_BGR888)
    h, w = img.height(), img.width()
    ptr = img.constBits()
    ptr.setsize(img.sizeInBytes())
    rows = np.frombuffer(ptr, np.uint8).reshape(h, img.bytesPerLine())
    return rows[:, : w * 3].reshape(h, w, 3).copy()


class VideoView(QWidget):
    """Paints the newest overlay scaled to fit (aspect kept, centred on a dark background), or a placeholder
    message when there is no picture (no source yet, or the source failed)."""

    PLACEHOLDER = "No source\n\nPick a camera, open a video file, or choose the synthetic scene."

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._image: QImage | None = None
        self._message = self.PLACEHOLDER
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setAttribute(Qt.WA_OpaquePaintEvent)

    def set_image(self, image: QImage) -> None:
        self._image = image
        self.update()

    def clear(self, message: str | None = None) -> None:
        """Drop the picture and show `message` (default: the no-source hint)."""
        self._image = None
        self._message = message or self.PLACEHOLDER
        self.update()

    @property
    def image(self) -> QImage | None:
        return self._image

    def image_rect(self) -> QRect:
        """Where the picture is drawn, in this widget's px (empty when there is none)."""
        if self._image is None or self._image.isNull():
            return QRect()
        iw, ih = self._image.width(), self._image.height()
        scale = min(self.width() / iw, self.height() / ih)
        w, h = max(1, round(iw * scale)), max(1, round(ih * scale))
        return QRect((self.width() - w) // 2, (self.height() - h) // 2, w, h)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(18, 18, 20))
        if self._image is not None and not self._image.isNull():
            p.setRenderHint(QPainter.SmoothPixmapTransform)
            p.drawImage(QRectF(self.image_rect()), self._image)
        else:
            p.setPen(QColor(150, 150, 155))
            font = QFont(self.font())
            font.setPointSizeF(font.pointSizeF() * 1.2)
            p.setFont(font)
            p.drawText(self.rect().adjusted(24, 24, -24, -24), Qt.AlignCenter | Qt.TextWordWrap, self._message)
        p.end()


class ElidedLabel(QLabel):
    """A one-line label that shortens its text with "…" to the width it is given (the full text is in the
    tooltip), so a long message never widens the status bar or the window."""

    def __init__(self, text: str = "", parent: QWidget | None = None):
        super().__init__(text, parent)
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.setMinimumWidth(60)
        self._default_colour = self.palette().color(QPalette.WindowText)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        super().setText(text)
        self.setToolTip(text)

    def set_colour(self, colour: QColor | None) -> None:
        """Text colour, or None for the palette's default."""
        palette = QPalette(self.palette())
        palette.setColor(QPalette.WindowText, colour if colour is not None else self._default_colour)
        self.setPalette(palette)

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.setPen(self.palette().color(self.foregroundRole()))
        rect = self.contentsRect()
        p.drawText(rect, int(self.alignment()) | Qt.AlignVCenter,
                   self.fontMetrics().elidedText(self.text(), Qt.ElideRight, rect.width()))
        p.end()
