"""OSC output (python-osc builds the packets; the UDP publisher sends them): for TouchDesigner, Max/MSP,
Pure Data, VCV Rack and the like. Per frame, one bundle for the frame and its gesture events, then one bundle
per person (about 1 kB each, under any network's MTU):

    /poselive/frame                          i frame, i width, i height, i people
    /poselive/gesture                        s name, i track id, s "start" | "end"
    /poselive/person/<track id>/gesture/<name>   i 1 at its start, 0 at its end
    /poselive/person/<track id>/<joint>      f nx, f ny, f score     (17 COCO joints: nose, left_shoulder, ...)
    /poselive/person/<track id>/head         f yaw, f pitch, f roll  (degrees; when a face was found)

nx, ny are 0..1 across the image (see messages.py); OSC floats are 32-bit, so absolute times are left out.
"""
from __future__ import annotations

from poselive.errors import PoseliveError
from poselive.publish.messages import Encoded
from poselive.publish.udp import UdpPublisher


def _message(address: str, *args):
    from pythonosc.osc_message_builder import OscMessageBuilder
    m = OscMessageBuilder(address)
    for a in args:
        m.add_arg(a)
    return m.build()


def _bundle(messages) -> bytes:
    from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
    b = OscBundleBuilder(IMMEDIATELY)
    for m in messages:
        b.add_content(m)
    return b.build().dgram


def osc_datagrams(message: Encoded) -> list[bytes]:
    d = message.data
    head = [_message("/poselive/frame", d["frame"], d["width"], d["height"], len(d["people"]))]
    for e in d["events"]:
        head.append(_message("/poselive/gesture", e["name"], e["track_id"], e["phase"]))
        head.append(_message(f"/poselive/person/{e['track_id']}/gesture/{e['name']}", int(e["phase"] == "start")))
    out = [_bundle(head)]
    for p in d["people"]:
        base = f"/poselive/person/{p['track_id']}"
        msgs = [_message(f"{base}/{j['name']}", float(j["nx"]), float(j["ny"]), float(j["score"]))
                for j in p["joints"]]
        pose = p.get("face", {}).get("head_pose")
        if pose:
            msgs.append(_message(f"{base}/head", float(pose["yaw"]), float(pose["pitch"]), float(pose["roll"])))
        out.append(_bundle(msgs))
    return out


def osc_publisher(host: str, port: int, queue_size: int = 4) -> UdpPublisher:
    try:
        import pythonosc  # noqa: F401
    except ImportError:
        raise PoseliveError("OSC output needs the 'python-osc' package: pip install 'poselive[stream]'")
    return UdpPublisher(host, port, osc_datagrams, queue_size, kind="OSC")
