"""The demo's Gradio app: three tabs (Photo, Webcam, Clip) over fer.demo.handlers, and launching it safely."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from fer.demo.handlers import CHART_FACES, Settings, WebcamSession, analyze_clip, analyze_photos, bars_html
from fer.demo.limits import LimitError, Limits
from fer.errors import optional_import

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
DEMO_INSTALL = "pip install 'fer2013-emotion-cnn[demo]' (in a clone: make demo)"
PRIORS = {
    "training": "training: the model's own class balance (best on faces like FER's)",
    "uniform": "uniform: every emotion equally likely a priori (more angry/disgust/fear, less neutral)",
}
HELP = """**Label set**: which head answers (a dual-head model: FER+'s 8 classes with contempt, or FER-2013's 7).
**Prior**: `training` keeps the model's class balance; `uniform` removes it, which lifts the rare emotions.
**TTA**: also classify shifted/flipped copies of each face and average (steadier, a few times slower).
**Detector**: `blazeface` is fast and the default; `haar` finds small frontal faces in crowds."""


def _gradio():
    return optional_import("gradio", "The demo", DEMO_INSTALL)


def label_sets(model=None) -> list[str]:
    """The heads a person can choose between: two for a dual-head model, none to choose for one head."""
    from fer.inference.models import model_classes

    heads = []
    for labels in ("ferplus", "fer2013"):
        try:
            heads.append((labels, model_classes(model, labels=labels)))
        except (ValueError, KeyError):
            continue
    return [name for name, _ in heads] if len({c for _, c in heads}) > 1 else []


def _settings(labels, prior, tta, detector) -> Settings:
    return Settings(labels=labels or None, prior=prior, tta={"off": False}.get(tta, tta), detector=detector)


def _options(gr, model):
    """The option widgets shared by the tabs, with what each does (HELP)."""
    from fer.analysis.probabilities import TTA_SCHEMES
    from fer.inference.detectors.registry import DEFAULT_DETECTOR, DETECTORS

    heads = label_sets(model)
    with gr.Accordion("Options", open=False):
        gr.Markdown(HELP)
        with gr.Row():
            labels = gr.Dropdown(heads or [""], value=heads[0] if heads else "", label="Label set", visible=bool(heads))
            prior = gr.Dropdown([(text, key) for key, text in PRIORS.items()], value="training", label="Prior")
            tta = gr.Dropdown(["off", *TTA_SCHEMES], value="off", label="TTA")
            detector = gr.Dropdown(sorted(DETECTORS), value=DEFAULT_DETECTOR, label="Detector")
    return [labels, prior, tta, detector]


def _photo_tab(gr, limits: Limits, model):
    with gr.Tab("Photo"):
        with gr.Row():
            with gr.Column():
                photo = gr.Image(
                    type="filepath",
                    sources=["upload", "clipboard"],
                    label="Photo (drop, paste or pick)",
                    elem_id="photo-in",
                )
                more = gr.File(file_count="multiple", file_types=["image"], label="Or several photos")
                explain = gr.Checkbox(label="Explain: saliency map per face (slower)")
                mesh = gr.Checkbox(label="Face mesh: 468 landmarks drawn and the head pose (yaw, pitch, roll)")
                options = _options(gr, model)
                run = gr.Button("Analyze", variant="primary")
            with gr.Column():
                gallery = gr.Gallery(label="Faces found", columns=1, height=480, elem_id="photo-annotated")
                status = gr.Textbox(label="Summary", elem_id="photo-summary", lines=2)
        bars = gr.HTML(elem_id="photo-bars")
        overlays = gr.Gallery(label="Saliency (red: what moved the answer most)", columns=6, visible=False)

        def handle(photo_path, files, explain_on, mesh_on, *chosen):
            paths = ([photo_path] if photo_path else []) + [f if isinstance(f, str) else f.name for f in files or []]
            if not paths:
                raise gr.Error("Drop, paste or pick a photo first.", print_exception=False)
            settings = _settings(*chosen)
            out = analyze_photos(paths, settings, limits=limits, explain=explain_on, landmarks=mesh_on, model=model)
            explained = gr.update(value=out.overlays, visible=bool(out.overlays))
            return out.annotated, out.summary, bars_html(out.table, out.classes), explained

        inputs = [photo, more, explain, mesh, *options]
        run.click(handle, inputs, [gallery, status, bars, overlays], api_name="photo")


def _webcam_tab(gr, limits: Limits, model):
    with gr.Tab("Webcam"):
        gr.Markdown("Allow the camera, then press record: every frame goes through the model on this machine.")
        with gr.Row():
            camera = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Camera", elem_id="webcam-in")
            shown = gr.Image(label="Emotions", elem_id="webcam-out", format="jpeg")  # jpeg: quicker to encode than webp
        with gr.Row():
            smooth = gr.Slider(1, 15, value=5, step=1, label="Smoothing (mean over the last N frames)")
            rate = gr.Textbox(label="Frames per second", elem_id="webcam-fps")
        chart = gr.LinePlot(x="time_s", y="probability", color="emotion", y_lim=[0, 1], label="First face over time")
        options = _options(gr, model)
        session = gr.State(None)

        def handle(frame, state, window, *chosen):
            if frame is None:
                return gr.skip(), state, gr.skip(), gr.skip()
            if state is None or state.smooth != int(window):
                state = WebcamSession(smooth=int(window))
            drawn = state.step(frame, _settings(*chosen), model)
            # The rate and the chart every 15th frame: redrawing them costs the browser more than a frame does.
            if state.frames % 15:
                return drawn, state, gr.skip(), gr.skip()
            return drawn, state, f"{state.frames_per_second:.1f}", state.chart()

        camera.stream(
            handle,
            [camera, session, smooth, *options],
            [shown, session, rate, chart],
            stream_every=0.05,
            concurrency_limit=limits.jobs,
            api_name="webcam",
        )


def _clip_tab(gr, limits: Limits, model, workdir: Path):
    with gr.Tab("Clip"):
        with gr.Row():
            with gr.Column():
                clip = gr.Video(
                    sources=["upload"], label=f"Clip (up to {limits.clip_seconds:.0f} s)", elem_id="clip-in"
                )
                stride = gr.Slider(1, 10, value=2, step=1, label="Analyse every N-th frame")
                options = _options(gr, model)
                run = gr.Button("Analyze clip", variant="primary")
            with gr.Column():
                annotated = gr.Video(label="Annotated clip", elem_id="clip-annotated")
                status = gr.Textbox(label="Summary", elem_id="clip-summary")
                table = gr.File(label="Table (CSV: one row per face per frame)")
        charts = [
            gr.LinePlot(x="time_s", y="probability", color="emotion", y_lim=[0, 1], label=f"Face {i + 1} (from left)")
            for i in range(CHART_FACES)
        ]

        def handle(path, every, *chosen):
            if not path:
                raise gr.Error("Upload a clip first.", print_exception=False)
            try:
                out = analyze_clip(path, workdir, _settings(*chosen), limits=limits, stride=int(every), model=model)
            except LimitError as exc:
                raise gr.Error(str(exc), print_exception=False) from None
            plots = [gr.update(value=c, visible=True) for c in out.charts]
            plots += [gr.update(value=None, visible=False)] * (CHART_FACES - len(out.charts))
            return str(out.annotated), out.summary, str(out.csv), *plots

        run.click(handle, [clip, stride, *options], [annotated, status, table, *charts], api_name="clip")


def build_app(limits: Limits | None = None, model=None, workdir: str | Path | None = None):
    """The demo as a gr.Blocks (not started): Photo, Webcam and Clip tabs; files it writes go to `workdir`."""
    gr = _gradio()
    limits = limits or Limits()
    workdir = Path(workdir or tempfile.mkdtemp(prefix="fer-demo-"))
    with gr.Blocks(title="fer: emotions in faces", analytics_enabled=False) as app:
        gr.Markdown("# Emotions in faces\nEvery face is found, cut to 48x48 gray and classified on this machine.")
        _photo_tab(gr, limits, model)
        _webcam_tab(gr, limits, model)
        _clip_tab(gr, limits, model, workdir)
    app.queue(default_concurrency_limit=limits.jobs, max_size=limits.queue)
    return app


def exposure(host: str, share: bool) -> list[str]:
    """What a person should know before others can reach the demo: a non-local address, a public link."""
    said = []
    if host not in LOCAL_HOSTS:
        said.append(f"the demo listens on {host}: anyone who can reach this machine can use it (there is no login)")
    if share:
        said.append("--share: Gradio makes a public link to this machine (there is no login)")
    return said


@dataclass
class Served:
    """A running demo: the Gradio app, its local URL and the temporary folder of its uploads and outputs."""

    app: object
    url: str
    folder: Path

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C raises KeyboardInterrupt here, without Gradio's own message)."""
        while self.app.is_running:
            time.sleep(0.2)

    def close(self) -> None:
        """Stop the server and remove the folder."""
        self.app.close(verbose=False)
        shutil.rmtree(self.folder, ignore_errors=True)


def serve(host="127.0.0.1", port=None, share=False, limits: Limits | None = None, model=None) -> Served:
    """Start the demo in the background (`.wait()` blocks on it, `.close()` stops it). Uploads and
    outputs live in a temporary folder, removed by close() or at exit."""
    for message in exposure(host, share):
        warnings.warn(message, stacklevel=2)
    folder = Path(tempfile.mkdtemp(prefix="fer-demo-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["GRADIO_TEMP_DIR"] = str(folder)  # uploads land here, not in a shared /tmp/gradio
    limits = limits or Limits()
    app = build_app(limits, model, folder / "outputs")
    app.launch(
        server_name=host,
        server_port=port,
        share=share,
        quiet=True,
        prevent_thread_lock=True,
        max_file_size=f"{limits.upload_mb}mb",
        show_error=True,
        footer_links=[],
    )
    return Served(app, app.local_url, folder)
