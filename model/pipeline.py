"""The one inference pipeline: read -> orient -> preprocess -> predict -> postprocess -> measure (-> render).

The web service, the CLI and the evaluation all call :class:`Segmenter`. Arrays are (Z, Y, X)
on the input's own grid; spacing in mm. Every error names the stage that raised it.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from . import config as cfg
from .errors import InputError, PipelineError
from .measure import measure, pixel_area_mm2, voxel_volume_mm3
from .orientation import (LOW_CONFIDENCE, RADIOLOGICAL_TO_ANTERIOR_RIGHT, OrientationEstimator, load_estimator,
                          model_frame, quarter_turns)
from .postprocess import binarize, clean_and_label, core_mask, has_core_rule, single_slice_settings
from .preprocess import (Window, apply_export_window, config_window, model_input, parse_export_window, resize_back,
                         resize_slices, to_unit_range)
from .readers import input_stem, read_sources
from .readers.geometry import file_layout_xyz
from .result import SegmentationResult
from .runtime import Predictor, load_predictor
from .symmetry import Midline, head_masks, midline
from .types import CTImage, Limits

CHUNK_SLICES = 4   # slices preprocessed and resized back at a time (bounds the memory used)
MAX_SPACING_MM = 100.0


@contextmanager
def stage(name: str, timings: dict):
    """Time a stage into ``timings[name]`` (ms, accumulated) and make its errors name it."""
    start = time.perf_counter()
    try:
        yield
    except PipelineError:
        raise
    except MemoryError as exc:
        raise InputError("not enough memory to process this input; try a smaller one",
                         stage=name, status=413) from exc
    except Exception as exc:  # noqa: BLE001 - any failure becomes one clear message
        raise PipelineError(f"unexpected error: {type(exc).__name__}: {exc}", stage=name) from exc
    finally:
        timings[name] = timings.get(name, 0.0) + (time.perf_counter() - start) * 1000.0


def parse_spacing(spacing_mm) -> Optional[tuple[float, ...]]:
    """User spacing: None, (row_mm, col_mm) or (row_mm, col_mm, slice_mm), each in (0, 100] mm."""
    if spacing_mm is None:
        return None
    try:
        values = tuple(float(v) for v in spacing_mm)
    except (TypeError, ValueError):
        values = ()
    if len(values) not in (2, 3) or not all(math.isfinite(v) and 0 < v <= MAX_SPACING_MM
                                             for v in values):
        raise InputError(f"spacing must be 2 or 3 positive numbers in mm (row, col[, slice]), got "
                         f"{spacing_mm!r}", stage="read", status=400)
    return values


def apply_spacing(image: CTImage, spacing: Optional[tuple[float, ...]]) -> tuple[CTImage, list[str]]:
    """Return ``image`` with the user's (row_mm, col_mm[, slice_mm]) and warnings for overrides."""
    if spacing is None:
        return image, []
    warnings, sources = [], []
    pixel, thickness = (spacing[0], spacing[1]), (spacing[2] if len(spacing) == 3 else None)
    own = image.pixel_spacing_mm
    if own is not None and not np.allclose(own, pixel, rtol=1e-4):
        warnings.append(f"pixel spacing {pixel[0]:g} x {pixel[1]:g} mm given by the user overrides "
                        f"{own[0]:g} x {own[1]:g} mm from the file ({image.spacing_source})")
    sources.append("user (in-plane)")
    if thickness is not None:
        own_t = image.slice_thickness_mm
        if own_t is not None and not math.isclose(own_t, thickness, rel_tol=1e-4):
            warnings.append(f"slice spacing {thickness:g} mm given by the user overrides {own_t:g} mm "
                            f"from the file ({image.spacing_source})")
        sources = ["user"]
    elif image.slice_thickness_mm is not None:
        sources.append(f"{image.spacing_source} (slice)")
    image = replace(image, pixel_spacing_mm=pixel, spacing_source=" + ".join(sources),
                    slice_thickness_mm=thickness if thickness is not None else image.slice_thickness_mm,
                    affine=scaled_affine(image, pixel, thickness))
    return image, warnings


def scaled_affine(image: CTImage, pixel: tuple[float, float], thickness: Optional[float]):
    """The mask-file affine with the user's voxel size when the file stated no geometry at all.

    Only for the readers' (X, Y, Z) layout; a file's own affine is never changed.
    """
    if (image.affine is None or image.spacing_source != "unknown" or thickness is None
            or image.to_file_layout is not file_layout_xyz):
        return image.affine
    affine = np.array(image.affine, dtype=float)
    for axis, size_mm in enumerate((pixel[1], pixel[0], thickness)):  # columns = X, Y, Z
        norm = np.linalg.norm(affine[:3, axis])
        if norm > 0:
            affine[:3, axis] *= size_mm / norm
    return affine


def check_image(image: CTImage) -> None:
    """Reject arrays the pipeline cannot process (array-in entry point)."""
    array = image.array
    if not isinstance(array, np.ndarray) or array.ndim != 3 or min(array.shape) < 1:
        raise InputError(f"image must be a non-empty (Z, Y, X) array, got shape "
                         f"{getattr(array, 'shape', None)}", stage="preprocess", status=422)
    if array.dtype.kind not in "biuf":
        raise InputError(f"image must be numeric, got dtype {array.dtype}", stage="preprocess",
                         status=422)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InputError("image has NaN or infinite values", stage="preprocess", status=422)


def upload_midline(image: CTImage, window: Window, size: tuple[int, int]) -> Optional[Midline]:
    """The head's midline on the model grid for the whole upload (``model.symmetry``), found
    CHUNK_SLICES at a time so that memory stays that of one chunk; None without a head."""
    heads = [head_masks(resize_slices(to_unit_range(image.array[z0:z0 + CHUNK_SLICES], image.intensity, window), size))
             for z0 in range(0, image.array.shape[0], CHUNK_SLICES)]
    return midline(np.concatenate(heads))


def infer_mask(predictor: Predictor, image: CTImage, timings: dict) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """(mask, core): the thresholded (Z, Y, X) bool mask on the input grid and, for a config
    with a core rule, the mask of voxels >= its core_threshold (else None); CHUNK_SLICES at a time."""
    config = predictor.config
    window = config_window(config)
    size = tuple(int(v) for v in config["input_size"])
    context = int(config["context_slices"])
    depth, shape = image.array.shape[0], image.array.shape[1:]
    binary = np.zeros(image.array.shape, dtype=bool)
    settings = config["postprocess"]
    core = np.zeros(image.array.shape, dtype=bool) if has_core_rule(settings) else None
    mirror = bool(config.get("mirror_channel"))
    with stage("preprocess", timings):
        line = upload_midline(image, window, size) if mirror else None
    for z0 in range(0, depth, CHUNK_SLICES):
        z1 = min(depth, z0 + CHUNK_SLICES)
        lo, hi = max(0, z0 - context), min(depth, z1 + context)
        with stage("preprocess", timings):
            unit = to_unit_range(image.array[lo:hi], image.intensity, window)
            x = model_input(unit, size, context, mirror, line)[z0 - lo:z1 - lo]
        with stage("predict", timings):
            prob = predictor.predict(x)
        with stage("postprocess", timings):
            prob = resize_back(prob, shape)
            binary[z0:z1] = binarize(prob, config["threshold"])
            if core is not None:
                core[z0:z1] = core_mask(prob, settings)
    return binary, core


#: Where the front of the head is in an upload that needs ``turns`` quarter turns to "anterior_right".
ANTERIOR_SIDE = {0: "right", 1: "bottom", 2: "left", 3: "top"}


def orientation_turns(config: dict, image: CTImage,
                      estimator: Optional[OrientationEstimator]) -> tuple[dict, list[str]]:
    """How ``image`` is brought into the model's frame, and warnings.

    Returns {"model_frame", "quarter_turns" (counter-clockwise, applied before the network and undone
    after), "source" ("not needed", "file geometry", "estimated" or "no head found"), "confidence"
    (of an estimate, else None)}. From the file's geometry when it states the radiological view,
    else estimated from the pixels.
    """
    frame = model_frame(config)

    def info(turns: int, source: str, confidence: Optional[float] = None) -> dict:
        return {"model_frame": frame, "quarter_turns": turns, "source": source,
                "confidence": None if confidence is None else round(confidence, 4)}

    if frame == "any":
        return info(0, "not needed"), []
    if image.radiological_view:
        return info(RADIOLOGICAL_TO_ANTERIOR_RIGHT, "file geometry"), []
    if estimator is None:
        raise PipelineError(f"model '{config['name']}' needs the orientation estimator "
                            "(orientation.json beside its weights); train it with `python -m training.orientation`",
                            stage="orient", status=503)
    planes = (to_unit_range(plane[None], image.intensity, estimator.window)[0] for plane in image.array)
    found = estimator.estimate(planes)
    if found is None:
        return info(0, "no head found"), ["no head outline found to estimate the slice orientation; slices used as uploaded"]
    notes = [f"slice orientation estimated from the pixels (front of the head at the {ANTERIOR_SIDE[found.turns]}, "
             f"confidence {found.confidence:.2f}, {found.slices} slices); the mask is on the upload's grid"]
    if found.confidence < LOW_CONFIDENCE:
        notes.append("the slice orientation is uncertain: check that the overlay follows the bleed")
    return info(found.turns, "estimated", found.confidence), notes


class Segmenter:
    """Loads every model that has trained weights once; segments uploads and arrays."""

    def __init__(self, weights_dir: str | Path = cfg.DEFAULT_WEIGHTS_DIR, limits: Limits = Limits(),
                 default_model: Optional[str] = None,
                 predictors: Optional[Mapping[str, Predictor]] = None,
                 estimator: Optional[OrientationEstimator] = None):
        """predictors: ready-made {name: Predictor} instead of loading ``weights_dir`` (tests);
        estimator: the orientation estimator (default: ``weights_dir``/orientation.json if present)."""
        self.weights_dir = Path(weights_dir)
        self.limits = limits
        self.estimator = estimator if estimator is not None else load_estimator(self.weights_dir)
        if predictors is None:
            predictors = {name: self._load(name) for name in cfg.available_models(self.weights_dir)}
        self._predictors = dict(predictors)
        self.default_model = cfg.default_model(self._predictors, default_model)

    def _load(self, name: str) -> Predictor:
        try:
            return load_predictor(self.weights_dir, name)
        except PipelineError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken weights file is reported by name
            raise PipelineError(f"cannot load model '{name}' from {self.weights_dir}: "
                                f"{type(exc).__name__}: {exc}", stage="predict") from exc

    def models(self) -> list[dict]:
        """[{name, architecture, input_size, threshold, version, metrics, runtime}] of loaded models."""
        return [p.describe() for p in self._predictors.values()]

    def predictor(self, model: Optional[str] = None) -> Predictor:
        """The loaded model ``model`` (None = default). 400 if unknown, 503 if not trained."""
        name = cfg.canonical_name(model) if model else self.default_model
        if name in self._predictors:
            return self._predictors[name]
        if name in cfg.KNOWN_MODELS:
            raise cfg.unavailable(self.weights_dir, name)
        raise cfg.unknown_model(model or name, sorted(self._predictors))

    def segment_sources(self, sources: Sequence[tuple[str, bytes]], *, model: Optional[str] = None,
                        spacing_mm=None, name: Optional[str] = None, export_window=None) -> SegmentationResult:
        """Segment uploaded (filename, bytes) pairs (one file, a DICOM series or PNG slices).

        export_window: (level, width) in HU that PNG/JPG grey values were exported with, if known."""
        started = time.perf_counter()
        predictor = self.predictor(model)
        spacing, window = parse_spacing(spacing_mm), parse_export_window(export_window)
        timings: dict = {}
        with stage("read", timings):
            image = read_sources(list(sources), self.limits)
        if name is None:
            name = input_stem(sources[0][0]) if sources else "input"
        return self._run(predictor, image, name, spacing, timings, started, window)

    def segment_image(self, image: CTImage, *, model: Optional[str] = None, name: str = "input",
                      spacing_mm=None, export_window=None) -> SegmentationResult:
        """Segment a CTImage (array-in entry used by the evaluation)."""
        started = time.perf_counter()
        predictor = self.predictor(model)
        return self._run(predictor, image, name, parse_spacing(spacing_mm), {"read": 0.0}, started,
                         parse_export_window(export_window))

    def _run(self, predictor: Predictor, image: CTImage, name: str, spacing, timings: dict,
             started: float, window: Optional[Window] = None) -> SegmentationResult:
        check_image(image)
        image, warnings = apply_spacing(image, spacing)
        with stage("preprocess", timings):
            array, intensity, notes = apply_export_window(image.array, image.intensity, window,
                                                          config_window(predictor.config))
            image, warnings = replace(image, array=array, intensity=intensity), warnings + notes
        with stage("orient", timings):
            orientation, notes = orientation_turns(predictor.config, image, self.estimator)
            warnings += notes
        turns = orientation["quarter_turns"]
        binary, core = infer_mask(predictor, replace(image, array=quarter_turns(image.array, turns)), timings)
        if turns:
            binary = np.ascontiguousarray(quarter_turns(binary, -turns))
            core = None if core is None else np.ascontiguousarray(quarter_turns(core, -turns))
        with stage("postprocess", timings):
            settings = predictor.config["postprocess"]
            if binary.shape[0] == 1:
                settings = single_slice_settings(settings, image.spacing_mm)
            mask, components = clean_and_label(binary, settings, voxel_volume_mm3(image.spacing_mm),
                                               core, pixel_area_mm2(image.pixel_spacing_mm))
            del binary, core
        with stage("measure", timings):
            measurements = measure(mask, image.pixel_spacing_mm, image.slice_thickness_mm,
                                   components=components)
            del components                     # the labels: freed before rendering
        timings["total"] = (time.perf_counter() - started) * 1000.0
        return SegmentationResult(name=name, image=image, mask=mask, config=predictor.config,
                                  runtime=predictor.runtime, measurements=measurements, orientation=orientation,
                                  warnings=[*image.warnings, *warnings, *measurements.warnings],
                                  timings_ms={k: round(v, 1) for k, v in timings.items()})
