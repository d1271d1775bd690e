"""A real RTSP server for the live tests and the soak run (gst-rtsp-server).

Run with the *system* Python, which has PyGObject and GStreamer's introspection data
(Debian: python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good
gstreamer1.0-plugins-bad)::

    /usr/bin/python3 rtsp_server.py --port 8554 --clip clip.mp4

serves ``rtsp://127.0.0.1:PORT/live`` on 127.0.0.1 only. Each client gets the H.264
clip from its start, paced in real time, without re-encoding; the stream ends (EOF
for the client) at the clip's end. Prints ``READY`` once listening.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--clip", required=True, help="an MP4 with an H.264 video stream")
    ap.add_argument("--path", default="/live")
    args = ap.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f'( filesrc location="{args.clip}" ! qtdemux ! h264parse config-interval=-1 '
                       f'! rtph264pay name=pay0 pt=96 )')
    factory.set_shared(False)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print("READY", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
