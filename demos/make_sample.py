"""Rebuild demos/vtest_short.mp4 from OpenCV's vtest.avi (see PROVENANCE.md)."""
import sys

import cv2

src = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
cap = cv2.VideoCapture(src)
if not cap.isOpened():
    sys.exit(f"cannot open {src}")
out = cv2.VideoWriter("demos/vtest_short.mp4", cv2.VideoWriter_fourcc(*"mp4v"), 10,
                      (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))))
for _ in range(150):
    ok, frame = cap.read()
    if not ok:
        break
    out.write(frame)
out.release()
