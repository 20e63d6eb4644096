"""Pieces of the distill page: method settings widgets, job controls (callbacks), the live panel, replay, exports.

Controls act through button callbacks (so a click never waits for the loop); a failing action stores its message
under `state.KEY_MESSAGE`, which the page shows until the next action. Start is disabled, with the reason, while a
shown value cannot run (`start_problem`), and what runs is read from the widgets at the click. The live panel is an
`st.fragment(run_every=REDRAW_S)` that reads `Job.state()` — a thread-safe copy — and never blocks on the worker.
"""
from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path
from typing import Any

import streamlit as st

from distill_core import exports, run_warnings
from distill_core.errors import DistillError
from distill_core.data import ImageSet
from distill_core.jobs import (ACTIVE_STATUSES, FAILED, PAUSED, RUNNING, STARTING, Job, JobSpec, JobState,
                               check_spec)
from distill_core.limits import LIMITS
from distill_core.methods import METHODS, family_label
from distill_core.methods.base import Method
from distill_core.methods.base import config_defaults as base_config_defaults
from distill_core import profiles
from distill_core.data import DATASETS
from distill_core.profiles import PROFILES
from distill_core.upload_defaults import Sized, is_small_dataset, sized_defaults
from distill_core.runs import default_runs_dir
from ui import grid, labels, plots, state
from ui.downloads import cached_download, projector_gif
from ui.errors import describe, strip_server_paths

REDRAW_S = 0.4  # the live panel redraws 2.5 times a second while a job runs
SIMPLE_TYPES = (bool, int, float, str)


# ---------------------------------------------------------------------------------------------- settings

def method_label(name: str) -> str:
    """The select box's entry: the method under its family's name, e.g. 'Kernel · kip' (the list is grouped by
    family, `distill_core.methods.by_family`)."""
    return family_label(name) if name in METHODS else name


def current_profile() -> str:
    """The profile chosen on the page ("fast" unless the user picked another)."""
    value = st.session_state.get(state.KEY_PROFILE)
    return value if value in PROFILES else "fast"


def shown_ipc() -> int | None:
    value = st.session_state.get(state.KEY_IPC)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return None


def _dataset_or_none(dataset_name: str) -> ImageSet | None:
    try:
        return state.resolve_dataset(dataset_name)
    except Exception:  # noqa: BLE001 - defaults without sizing; Start says why the dataset cannot run
        return None


def page_defaults(cls: type[Method], dataset_name: str, profile: str | None = None, ipc: int | None = None,
                  dataset: ImageSet | None = None) -> Sized:
    """The defaults the page shows for a method: its Config for the dataset under the profile and at the IPC
    (`Config.for_dataset`), and its default steps (the profile's iterations); on an upload or an image folder
    both sized to the data (`upload_defaults.sized_defaults`, whose notes say what changed)."""
    profile = profile or current_profile()
    try:
        cfg = base_config_defaults(cls.Config, dataset_name, profile, ipc)
    except Exception:  # noqa: BLE001 - a method whose dataset defaults fail still gets its plain defaults
        cfg = cls.Config()
    values = dataclasses.asdict(cfg)
    steps = int(cls.default_steps)
    if cls.kind == "distiller":
        try:
            n = profiles.iterations(cls.name, dataset_name, profile, ipc or 1)
        except Exception:  # noqa: BLE001
            n = None
        if n is not None:  # dc/dsa count networks, each matched outer_loop times (profiles' docstring)
            steps = int(n) * int(values.get("outer_loop") or 1)
    if not is_small_dataset(dataset_name, list(DATASETS)):
        return Sized(values, steps)
    ds = dataset if dataset is not None and dataset.name == dataset_name else _dataset_or_none(dataset_name)
    if ds is None:
        return Sized(values, steps)
    return sized_defaults(values, steps, ds.class_counts(), ipc or 1, distiller=cls.kind == "distiller")


def config_defaults(cls: type[Method], dataset_name: str, profile: str | None = None,
                    ipc: int | None = None) -> dict[str, Any]:
    """The method's default settings on the page (see `page_defaults`)."""
    return page_defaults(cls, dataset_name, profile, ipc).settings


def default_steps(cls: type[Method], dataset_name: str, profile: str | None = None, ipc: int | None = None) -> int:
    """The Steps box's default for a method (see `page_defaults`; 1 for a selector)."""
    return page_defaults(cls, dataset_name, profile, ipc).steps if cls.kind == "distiller" else \
        int(cls.default_steps)


def _setting_widget(cls: type[Method], name: str, default: Any, meta: dict, disabled: bool) -> None:
    key = state.setting_key(cls.name, name)
    w = labels.words(cls.name, name)
    label = w.label if w is not None else name
    help_text = (w.help if w is not None else meta.get("help") or "") + f" (`{name}`)"
    choices = (w.options() if w is not None else None) or (list(meta["choices"]) if meta.get("choices") else None)
    if choices:
        if st.session_state[key] not in choices:
            st.session_state[key] = default
        st.selectbox(label, choices, key=key, disabled=disabled, help=help_text)
    elif isinstance(default, bool):
        st.checkbox(label, key=key, disabled=disabled, help=help_text)
    elif isinstance(default, int):
        st.number_input(label, key=key, step=1, disabled=disabled, help=help_text)
    elif isinstance(default, float):
        st.number_input(label, key=key, format="%g", step=_float_step(default), disabled=disabled,
                        help=help_text)
    else:
        st.text_input(label, key=key, disabled=disabled, help=help_text)


def settings_widgets(cls: type[Method], dataset_name: str, disabled: bool) -> None:
    """One widget per simple Config field, keyed `distill.setting.<method>.<field>`, labelled in words
    (`ui.labels`: a label, a tooltip, choices as a select box), the advanced ones folded under "Advanced";
    defaults from `page_defaults` (the profile's, for this dataset and IPC, sized to an upload). Values the user
    has not changed follow the defaults when the dataset, the IPC or the profile changes."""
    sized = page_defaults(cls, dataset_name, ipc=shown_ipc())
    defaults = sized.settings
    editable = {k: v for k, v in defaults.items() if isinstance(v, SIMPLE_TYPES)}
    if not editable:
        st.caption("This method has no settings.")
        return
    fields = {f.name: f for f in dataclasses.fields(cls.Config)}
    marker = f"_distill.defaults.{cls.name}"
    previous = st.session_state.get(marker) or {}
    for name, default in editable.items():
        key = state.setting_key(cls.name, name)
        if key not in st.session_state or (name in previous and st.session_state[key] == previous[name]
                                           and previous[name] != default):
            st.session_state[key] = default
    main = [n for n in editable if not (labels.words(cls.name, n) or labels.Words("", "")).advanced]
    advanced = [n for n in editable if n not in main]

    def draw(names: list[str]) -> None:
        cols = st.columns(3)
        for i, name in enumerate(names):
            meta = fields[name].metadata if name in fields else {}
            with cols[i % 3]:
                _setting_widget(cls, name, editable[name], meta, disabled)

    draw(main)
    if advanced:
        with st.expander(f"Advanced ({len(advanced)})", icon=":material/settings:"):
            draw(advanced)
    st.session_state[marker] = dict(editable)
    if sized.notes:
        st.caption("Sized to this dataset: " + "; ".join(sized.notes) + ".")
    fixed = [k for k in defaults if k not in editable]
    if fixed:
        st.caption("Fixed here (CLI `--param` to change): " + ", ".join(fixed))


PROFILE_WORDS = {"fast": "fast (CPU, minutes)", "paper": "paper (published recipe)"}


def profile_label(profile: str) -> str:
    return PROFILE_WORDS.get(profile, profile)


def time_note(method: str, dataset_name: str, ipc: int, steps: int, profile: str | None = None,
              device_type: str | None = None, pixels: int | None = None,
              stored: bool | None = None) -> tuple[str, bool]:
    """(the expected-time line below the buttons, whether it is a warning). The paper profile on a CPU says so,
    with the estimate from the fast profile's measured step times as a lower bound (its steps are heavier), and
    warns like any long run; it also warns when nothing was measured to go by. `pixels` (C×H×W per image): an
    uploaded dataset's estimate scales a measured one's by image size; `stored`: whether the experts or teacher
    the run trains first are stored (`first_use_stored`; None: unknown)."""
    from ui.learn import estimate_note

    profile = profile or current_profile()
    note, warn = estimate_note(method, dataset_name, ipc, steps, pixels=pixels, stored=stored)
    if profile != "paper" or METHODS.get(method) is None or METHODS[method].kind != "distiller":
        return note, warn
    if device_type is None:
        from distill_core.device import resolve_device

        device_type = resolve_device("auto").type
    if device_type != "cpu":
        return note, warn
    return (f"Paper profile on a CPU: {note} Its steps are heavier than the fast profile's measured ones, so "
            f"expect longer still; a GPU is the place for the published recipe."), True


def first_use_stored(dataset: ImageSet) -> bool | None:
    """Whether what the run the page shows trains before its first step (experts, a teacher) is stored for this
    dataset: None when it trains nothing first or the page's values cannot be checked (`start_problem` says why)."""
    try:
        spec = build_spec()
        cls, config, _ = check_spec(spec, dataset)
        return cls.first_use_stored(dataset, config)
    except Exception:  # noqa: BLE001 - start_problem() reports what is wrong with the values
        return None


def memory_note(dataset: ImageSet) -> str:
    """The run's estimated peak memory, one sentence ('' when the page's values cannot be checked)."""
    from distill_core.device import resolve_device
    from distill_core.memory import estimate, format_bytes

    try:
        spec = build_spec()
        _, config, _ = check_spec(spec, dataset)
        est = estimate(spec.method, dataset, spec.ipc, config, resolve_device(spec.device))
    except Exception:  # noqa: BLE001 - start_problem() reports what is wrong with the values
        return ""
    return f"Peak memory about {format_bytes(est.total)} on the {est.device.upper()} (estimated)."


def _float_step(value: float) -> float:
    if not math.isfinite(value) or value == 0:
        return 0.1
    return float(10 ** math.floor(math.log10(abs(value))))


def reset_settings(method: str) -> None:
    for key in [k for k in st.session_state.keys() if str(k).startswith(state.setting_key(method, ""))]:
        del st.session_state[key]
    cls = METHODS.get(method)
    if cls is not None:
        st.session_state[state.KEY_STEPS] = default_steps(cls, state.selected_dataset_name(), ipc=shown_ipc())


def follow_default_steps(cls: type[Method], dataset_name: str) -> None:
    """Before the Steps box is drawn: a number of steps the user has not changed follows the default when the
    dataset, IPC or profile changes (as the settings do)."""
    marker = "_distill.default_steps"
    new = default_steps(cls, dataset_name, ipc=shown_ipc())
    old = st.session_state.get(marker)
    if isinstance(old, tuple) and old[0] == cls.name and st.session_state.get(state.KEY_STEPS) == old[1] \
            and old[1] != new:
        st.session_state[state.KEY_STEPS] = new
    st.session_state[marker] = (cls.name, new)


def on_profile_change() -> None:
    """A newly chosen profile sets the method's settings and steps to its defaults (what was typed is replaced:
    the profile is a whole recipe)."""
    state.clear_message()
    method = st.session_state.get(state.KEY_METHOD)
    if method in METHODS:
        reset_settings(method)


def collect_settings(cls: type[Method], dataset_name: str, profile: str | None = None,
                     ipc: int | None = None) -> dict[str, Any]:
    """The settings that differ from the page's defaults, read from the widgets' keys (the defaults the job
    builds itself come from the same profile and IPC, so only these need to travel)."""
    defaults = page_defaults(cls, dataset_name, profile, ipc).settings
    plain = base_config_defaults_dict(cls, dataset_name, profile or current_profile(), ipc)
    out: dict[str, Any] = {}
    for name, default in defaults.items():
        key = state.setting_key(cls.name, name)
        value = st.session_state[key] if key in st.session_state else default
        if value != plain.get(name, default):
            out[name] = value
    return out


def base_config_defaults_dict(cls: type[Method], dataset_name: str, profile: str, ipc: int | None) -> dict:
    """The Config's own defaults for the dataset, profile and IPC (what the job starts from before overrides)."""
    try:
        return dataclasses.asdict(base_config_defaults(cls.Config, dataset_name, profile, ipc))
    except Exception:  # noqa: BLE001
        return dataclasses.asdict(cls.Config())


# ---------------------------------------------------------------------------------------------- controls

def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise DistillError(f"{what} must be a whole number, got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise DistillError(f"{what} must be a whole number, got {value!r}")
        return int(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DistillError(f"{what} must be a whole number, got {value!r}") from None


def build_spec() -> JobSpec:
    """A JobSpec from the values the widgets show now (their session-state keys), never from a remembered earlier
    value (DistillError with a clear message when one is unusable)."""
    ss = st.session_state
    method = ss.get(state.KEY_METHOD)
    if method not in METHODS:
        raise DistillError(f"unknown method {method!r}; choose one of {', '.join(sorted(METHODS))}")
    cls = METHODS[method]
    dataset = state.selected_dataset_name()
    steps = _as_int(ss.get(state.KEY_STEPS, cls.default_steps), "steps") if cls.kind == "distiller" else 1
    ipc = _as_int(ss.get(state.KEY_IPC, 1), "IPC")
    profile = current_profile()
    return JobSpec(method=method, dataset=dataset, ipc=ipc, steps=steps, seed=_as_int(ss.get(state.KEY_SEED, 0),
                   "seed"), settings=collect_settings(cls, dataset, profile, ipc if ipc >= 1 else None),
                   profile=profile)


def start_problem(dataset: ImageSet | None) -> str | None:
    """Why Start cannot run what the page shows now (one sentence), or None when it can: the same checks the job
    makes before it starts (IPC within the smallest class and the limit, steps ≥ 1, every setting parseable)."""
    if dataset is None:
        return "the dataset could not be loaded"
    try:
        spec = build_spec()
        if spec.dataset != dataset.name and spec.dataset not in state.user_datasets():
            dataset = state.resolve_dataset(spec.dataset)
        check_spec(spec, dataset)
    except DistillError as exc:
        return describe(exc)
    except Exception as exc:  # noqa: BLE001 - a setting whose own parser fails
        return describe(exc)
    return None


def on_method_change() -> None:
    """A newly chosen method starts from its own default number of steps (shown in the Steps box)."""
    state.clear_message()
    cls = METHODS.get(st.session_state.get(state.KEY_METHOD))
    if cls is not None:
        st.session_state[state.KEY_STEPS] = default_steps(cls, state.selected_dataset_name(), ipc=shown_ipc())


def on_start() -> None:
    state.clear_message()
    try:
        spec = build_spec()
        dataset = state.resolve_dataset(spec.dataset)
        check_spec(spec, dataset)
        state.start_job(spec, dataset)
        steps = f", {spec.steps:,} steps" if METHODS[spec.method].kind == "distiller" else ""
        state.set_message("info", f"Started {spec.method} on {spec.dataset}, IPC {spec.ipc}{steps}, "
                                  f"seed {spec.seed}, {spec.profile} profile.")
    except Exception as exc:  # noqa: BLE001 - one clear message, never a traceback
        state.set_message("error", describe(exc))


def _with_job(action: str) -> None:
    state.clear_message()
    job = state.current_job()
    if job is None:
        state.set_message("warning", "No run in this session yet — press Start.")
        return
    getattr(job, action)(*(() if action != "stop" else (True, 5.0)))
    state.set_message("info", {"pause": "Paused.", "resume": "Resumed.", "stop": "Stopped."}[action])


def on_pause() -> None:
    _with_job("pause")


def on_resume() -> None:
    _with_job("resume")


def on_stop() -> None:
    _with_job("stop")


def on_save() -> None:
    """Save again (the autosave failed, e.g. a full disk): one more try into the runs folder."""
    state.clear_message()
    job = state.current_job()
    try:
        if job is None:
            raise DistillError("nothing to save: start a run first")
        path = job.saved_path or job.save(runs_dir=default_runs_dir())
        st.session_state[state.KEY_LIBRARY_SELECTED] = path.name
        state.set_message("success", f"Saved to the run library as {path.name}.")
    except Exception as exc:  # noqa: BLE001
        state.set_message("error", describe(exc))


# -------------------------------------------------------------------------------------------- live panel

def fmt_seconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds}s"


def progress_text(s: JobState) -> str:
    parts = [f"{s.status}", f"step {s.step:,} / {s.total_steps:,}"]
    if s.kind == "distiller":
        parts.append(f"{getattr(s.spec, 'profile', 'fast')} profile")
    if s.steps_per_s > 0:
        parts.append(f"{s.steps_per_s:.1f} steps/s")
    if s.status in ACTIVE_STATUSES:
        parts.append(f"ETA {fmt_seconds(s.eta_s)}")
    parts.append(f"elapsed {fmt_seconds(s.elapsed_s)}")
    return " · ".join(parts)


def saved_text(s: JobState) -> str | None:
    """Where the run was autosaved (its folder's name), or why it was not."""
    if s.saved_path:
        return f"Saved to the run library as **{Path(s.saved_path).name}**."
    if s.save_error:
        return f"Not saved: {strip_server_paths(s.save_error)}"
    return None


def accuracy_reference(s: JobState) -> dict[str, float]:
    """Reference lines for the accuracy plot: random picks at this IPC, the full training data (when known)."""
    last = s.last_accuracy
    if last is None:
        return {}
    from distill_core.jobs import reference_accuracies

    try:
        return reference_accuracies(s.spec.dataset, s.spec.ipc, last["protocol"], last.get("epochs"),
                                    dataset=_job_dataset(s))
    except Exception:  # noqa: BLE001 - a reference line is a nicety
        return {}


def overfitting_text(s: JobState) -> str | None:
    """The overfitting warning for a job's evaluations and logged losses (`run_warnings.overfitting_warning`)."""
    ds = _job_dataset(s)
    n_test = len(ds.y_test) if ds is not None else 10_000
    try:
        return run_warnings.overfitting_warning(s.accuracy, s.metrics, n_test)
    except Exception:  # noqa: BLE001 - a warning must never break the live view
        return None


def _job_dataset(s: JobState):
    job = state.current_job()
    return job.dataset if job is not None and job.id == s.job_id else None


def draw_state(s: JobState, grid_here: bool = True, present: bool = False) -> None:
    """Progress, grid (unless the replay draws it), loss curve and accuracy curve of one job state. In
    presentation mode the grid is large and the curves go below it."""
    st.progress(s.progress, text=progress_text(s))
    if s.status == FAILED:
        st.error(f"The run failed: {strip_server_paths(s.error or '')}")
    if not grid_here:
        return
    if present:
        _grid_or_wait(s, present=True)
        cols = st.columns(2)
        _curves(s, cols)
        return
    left, right = st.columns([3, 2])
    with left:
        _grid_or_wait(s)
    with right:
        _curves(s, [right, right])


def _grid_or_wait(s: JobState, present: bool = False) -> None:
    if s.images is not None:
        grid.show_grid(s.images, s.class_names, s.labels, present=present,
                       caption=f"{s.spec.method} on {s.spec.dataset}, IPC {s.spec.ipc} — step {s.step:,}")
    elif s.status in ACTIVE_STATUSES:
        st.info("Preparing the method… the grid appears with its first images.")


def _curves(s: JobState, cols) -> None:
    with cols[0]:
        last = s.last_accuracy
        if last is not None:
            band = plots.smoothed_accuracy(s.accuracy)
            shown = band[-1]["mean"] if band else last["acc"]
            st.metric("Test accuracy (smoothed)", f"{100 * shown:.1f}%",
                      help=f"{last['protocol']}: mean of the last {plots.SMOOTH_WINDOW} evaluations (one network "
                           f"each); latest {100 * last['acc']:.1f}% at step {last['step']:,}"
                           + (f", {last['epochs']} epochs" if "epochs" in last else ""))
        if s.evaluating:
            st.caption("Evaluating the latest images…")
        if s.eval_error:
            st.caption(f"Accuracy unavailable: {strip_server_paths(s.eval_error)}")
        fig = plots.accuracy_figure(s.accuracy, references=accuracy_reference(s))
        if fig is not None:
            st.plotly_chart(fig, key="distill.acc", config={"displayModeBar": False})
        warning = overfitting_text(s)
        if warning:
            st.warning(warning, icon=":material/trending_down:")
        diverged = run_warnings.diverged_evaluations_warning(s.accuracy)
        if diverged:
            st.warning(diverged, icon=":material/error:")
    with cols[1]:
        for name, fig in (("loss", plots.loss_figure(s.metrics)), ("other", plots.other_metrics_figure(s.metrics))):
            if fig is not None:
                st.plotly_chart(fig, key=f"distill.{name}", config={"displayModeBar": False})


def live_panel(job: Job, status: str, present: bool = False) -> None:
    """The job's state, redrawn every REDRAW_S seconds while its threads work (a fragment). `status` is the job's
    status when the page run began; when it changes, or the threads end, the whole page reruns once (controls,
    replay and exports follow), and polling stops when nothing is left to change. Once the job no longer runs,
    only the progress is drawn here: `result_view` draws the (single) grid and the curves."""
    polling = job.alive and status != PAUSED
    grid_here = status in (STARTING, RUNNING)

    @st.fragment(run_every=REDRAW_S if polling else None)
    def _panel() -> None:
        s = job.state()
        draw_state(s, grid_here=grid_here, present=present)
        if polling and (s.status != status or not job.alive):
            st.rerun()

    _panel()


# ---------------------------------------------------------------------------------------- replay, exports

PLAY_FRAME_S = 0.3  # seconds per snapshot while the replay plays


def _toggle_play(play_key: str, slider_key: str) -> None:
    if st.session_state.get(play_key) is None:
        st.session_state[play_key] = 0
    else:
        st.session_state.pop(play_key, None)


def result_view(job: Job, present: bool = False) -> None:
    """A job that no longer runs (paused, finished, stopped, failed): its grid once — with the replay slider and
    Play when there are snapshots — and its curves (beside it, or below it in presentation mode)."""
    s = job.state()
    if present:
        _result_grid(job, s, present=True)
        _curves(s, st.columns(2))
        return
    left, right = st.columns([3, 2])
    with left:
        _result_grid(job, s)
    with right:
        _curves(s, [right, right])


def _result_grid(job: Job, s: JobState, present: bool = False) -> None:
    if len(job.snapshots()[0]) >= 2:
        replay(job, present=present)
    elif s.images is not None:
        grid.show_grid(s.images, s.class_names, s.labels, present=present,
                       caption=f"{s.spec.method} on {s.spec.dataset}, IPC {s.spec.ipc} — step {s.step:,}")


def replay(job: Job, present: bool = False) -> None:
    """The run's grid with a slider over the stored snapshots and a Play button that animates them (a fragment
    that advances one snapshot every PLAY_FRAME_S seconds). Shown when the job is not running, in place of the
    live grid."""
    steps, images = job.snapshots()
    if len(steps) < 2:
        return
    s = job.state()
    slider_key = f"distill.replay.{job.id}.{len(steps)}"
    play_key = f"distill.play.{job.id}"
    playing = st.session_state.get(play_key) is not None
    if slider_key not in st.session_state:
        st.session_state[slider_key] = len(steps) - 1
    st.button("Stop playing" if playing else "Play", key=f"distill.play.button.{job.id}",
              icon=":material/stop:" if playing else ":material/play_arrow:", on_click=_toggle_play,
              args=(play_key, slider_key), help="Animate the stored snapshots, first to last")

    @st.fragment(run_every=PLAY_FRAME_S if playing else None)
    def _player() -> None:
        frame = st.session_state.get(play_key)
        if frame is not None:
            st.session_state[slider_key] = min(int(frame), len(steps) - 1)
        idx = st.select_slider("Replay the evolution", options=list(range(len(steps))),
                               format_func=lambda i: f"step {steps[i]:,}", key=slider_key)
        grid.show_grid(images[idx].float(), s.class_names, s.labels, present=present,
                       caption=f"{s.spec.method} on {s.spec.dataset}, IPC {s.spec.ipc} — snapshot {idx + 1} of "
                               f"{len(steps)}, step {steps[idx]:,}")
        if frame is not None:
            if frame >= len(steps) - 1:
                st.session_state.pop(play_key, None)
                st.rerun()  # the whole page: the button says Play again and the timer stops
            else:
                st.session_state[play_key] = int(frame) + 1

    _player()


def _stem(s: JobState) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in s.spec.dataset)[-30:]
    return f"{safe}-{s.spec.method}-ipc{s.spec.ipc}-step{s.step}"


def exports_row(job: Job) -> None:
    """Where the run was saved, and its downloads: PNG grid, GIF of the evolution (projector-sized), zip of the
    run folder. The bytes are built in this script run (cached per job, step and format), so a download never
    depends on a file a rerun may have dropped."""
    s = job.state()
    summary = job.summary()
    if summary is None:
        return
    stem = _stem(s)
    text = saved_text(s)
    base = f"{job.id}.{s.step}.{s.version}"

    def make_png() -> bytes:
        return exports.png_grid(summary.images, summary.class_names, summary.hard_labels)

    def make_gif() -> bytes:
        steps, images = job.snapshots()
        if not steps:
            steps, images = [s.step], [summary.images]
        return projector_gif(exports.gif_evolution(images, steps, summary.class_names, summary.hard_labels))

    def make_zip() -> bytes:
        if job.saved_path is not None and job.saved_path.is_dir():
            return exports.zip_run_folder(job.saved_path)
        with tempfile.TemporaryDirectory() as tmp:
            return exports.zip_run_folder(job.save(out_dir=Path(tmp) / stem))

    cols = st.columns([1, 1, 1, 2])
    with cols[0]:
        cached_download("PNG grid", make_png, f"{stem}.png", "image/png", key=f"distill.dl.png.{job.id}",
                        cache_key=f"{base}.png")
    with cols[1]:
        cached_download("GIF of the evolution", make_gif, f"{stem}.gif", "image/gif",
                        key=f"distill.dl.gif.{job.id}", cache_key=f"{base}.gif")
    with cols[2]:
        cached_download("Run folder (zip)", make_zip, f"{stem}.zip", "application/zip",
                        key=f"distill.dl.zip.{job.id}", cache_key=f"{base}.{s.saved_path}.zip")
    with cols[3]:
        if text:
            st.markdown(text)
        if s.saved_path is None and not s.active:
            st.button("Save to library", key="distill.save", on_click=on_save, icon=":material/save:")


def sanitize_int(key: str, default: int) -> None:
    """Before a number_input is drawn: a missing value gets `default`; a value that is not a number at all (set by
    a preset or a script) is replaced, with a warning, so the widget never raises. A whole number out of range is
    kept as it is: the page shows it and Start says why it cannot run it."""
    ss = st.session_state
    if key not in ss:
        ss[key] = default
        return
    value = ss[key]
    if isinstance(value, int) and not isinstance(value, bool):
        return
    fixed = default
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        ss[key] = int(value)
        return
    ss[key] = fixed
    state.set_message("warning", f"{key.split('.')[-1]} {value!r} is not a whole number; using {fixed}")


def default_ipc(ds_counts: list[int]) -> int:
    return int(max(1, min(10, min(ds_counts) if ds_counts else 1, LIMITS.max_ipc)))
