"""`demo`: the browser demo (Gradio) for photos, the webcam and clips, on this machine."""

from __future__ import annotations

import signal
import sys
import warnings

from fer.cli.common import add_model
from fer.demo.limits import Limits


class OneLineTracebacks:
    """sys.stderr for the running server: each Python traceback (Gradio prints one for every request it refuses,
    an upload over the size limit among them) becomes one `request failed:` line with its last line; other
    text passes through. `--verbose` keeps the tracebacks whole."""

    def __init__(self, stream):
        self.stream, self.pending, self.inside = stream, "", False

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if line.startswith("Traceback (most recent call last):"):
                self.inside = True
            elif self.inside and line and not line.startswith((" ", "\t")):
                self.inside = False  # the exception's own line ends the traceback
                self.stream.write(f"request failed: {line}\n")
            elif not self.inside:
                self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def cmd_demo(args) -> int:
    from fer.demo.app import exposure, serve

    limits = Limits(
        upload_mb=args.max_upload_mb, max_pixels=args.max_pixels, clip_seconds=args.clip_seconds, jobs=args.jobs
    )
    for message in exposure(args.host, args.share):
        print(f"warning: {message}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # said above; Gradio's own start-up warnings are not this command's output
        served = serve(args.host, args.port, args.share, limits, args.model)
    print(f"fer demo: {served.url}" + (f"  public: {served.app.share_url}" if served.app.share_url else ""))
    print(f"  limits: files up to {limits.upload_mb} MB, photos up to {limits.max_pixels / 1e6:.0f} MP, "
          f"clips up to {limits.clip_seconds:.0f} s, {limits.jobs} job(s) at once")  # fmt: skip
    print(f"  uploads and outputs: {served.folder} (removed when it stops).  Ctrl-C stops it.")
    if args.open:
        import webbrowser

        webbrowser.open(served.url)
    if not args.show_logs:
        sys.stderr = OneLineTracebacks(sys.stderr)
    # `kill` (SIGTERM, a service manager's stop) ends it like Ctrl-C: the folder is removed either way.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        served.wait()
    except KeyboardInterrupt:
        pass
    finally:
        served.close()
        print("fer demo: stopped")
    return 0


def add_demo(sub) -> None:
    """The `demo` subcommand's arguments."""
    p = sub.add_parser("demo", help="a local web app: photos, the webcam and clips in the browser (the demo extra)")
    add_model(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=int, help="port (default: the first free from 7860)")
    p.add_argument("--share", action="store_true", help="ask Gradio for a public link (needs internet; no login)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    d = Limits()
    p.add_argument("--max-upload-mb", type=int, default=d.upload_mb, help=f"largest file (default: {d.upload_mb})")
    p.add_argument("--max-pixels", type=int, default=d.max_pixels, help=f"largest photo (default: {d.max_pixels:,})")
    p.add_argument(
        "--clip-seconds", type=float, default=d.clip_seconds, help=f"longest clip (default: {d.clip_seconds:g})"
    )
    p.add_argument("--jobs", type=int, default=d.jobs, help=f"photos/clips/frames analysed at once (default: {d.jobs})")
    p.set_defaults(func=cmd_demo)
