"""Every input limit in one place; the app's .streamlit/config.toml matches UPLOAD_MAX_MB."""
from __future__ import annotations

from dataclasses import dataclass


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


LIMITS = Limits()
