"""Every input limit in one place; the app's .streamlit/config.toml matches UPLOAD_MAX_MB.

The limits guard against what nobody has vetted: uploads and image folders keep `LIMITS` as they are. A dataset
of the registry is a known quantity, so `limits_for(name)` raises the class, file and image-size limits to admit
its published size (Tiny-ImageNet's 200 classes and 110,000 images, say) and never lowers any.
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Limits:
    upload_max_mb: int = 200          # size of an uploaded zip (also server.maxUploadSize)
    unpacked_max_mb: int = 1024       # total uncompressed size of a zip, checked before extracting
    max_files: int = 20_000           # image files in one dataset folder / zip
    max_classes: int = 100            # class folders
    min_image_side: int = 4           # smaller images are refused
    max_image_pixels: int = 4096 * 4096  # larger images are refused (decompression bombs)
    max_image_size: int = 128         # largest side an uploaded dataset may be resized to
    max_ipc: int = 100                # images per class a method may produce
    max_steps: int = 1_000_000
    max_concurrent_jobs: int = 2      # running distillations across all browser sessions
    job_torch_threads: int = 1        # torch threads a background job may use
    snapshot_budget_mb: float = 256.0  # default byte budget of a saved run's snapshots (CLI: --snapshot-budget-mb)

    def admitting(self, num_classes: int = 0, num_images: int = 0, image_size: int = 0) -> "Limits":
        """These limits, raised where needed to admit a dataset of known size (never lowered)."""
        return replace(self, max_classes=max(self.max_classes, int(num_classes)),
                       max_files=max(self.max_files, int(num_images)),
                       max_image_size=max(self.max_image_size, int(image_size)))


LIMITS = Limits()


def limits_for(dataset_name: str | None) -> Limits:
    """The limits that apply to a dataset: a registry name's known class count, image count and image size are
    trusted (the limits grow to admit them); `folder:PATH`, uploads and unknown names get `LIMITS`."""
    from .data import DATASETS  # the registry imports this module: look it up at call time

    info = DATASETS.get(dataset_name) if isinstance(dataset_name, str) else None
    if info is None:
        return LIMITS
    return LIMITS.admitting(info.num_classes, info.num_images, max(info.shape[1:]))
