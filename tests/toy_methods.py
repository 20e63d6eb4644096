"""A tiny registered-on-demand distiller for the job and app tests (the real ones may not have landed yet).

`toy`: images start as random real images and move towards their class mean by plain gradient descent on the
MSE; `delay_s` slows each step down, `fail_at` raises at that step (to test error capture).
"""
from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from distill_core.methods.base import METHODS, Method, MethodConfig, class_balanced_pick
from distill_core.summary import Summary


@dataclass
class ToyConfig(MethodConfig):
    lr: float = 0.1
    delay_s: float = 0.0
    fail_at: int = 0  # 0: never


class ToyDistiller(Method):
    name = "toy"
    kind = "distiller"
    description = "Test-only: real images pulled towards their class mean."
    Config = ToyConfig
    default_steps = 50

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        idx = class_balanced_pick(self.dataset.y_train, self.dataset.num_classes, self.ipc, self.generator)
        self.x = self.dataset.x_train[idx].clone()
        self.y = self.dataset.y_train[idx].clone()
        self.means = torch.stack([self.dataset.x_train[self.dataset.y_train == c].mean(0)
                                  for c in range(self.dataset.num_classes)])[self.y]

    def _step(self) -> dict[str, float]:
        if self.config.fail_at and self.steps_done + 1 == self.config.fail_at:
            raise RuntimeError("toy failure on purpose")
        if self.config.delay_s:
            time.sleep(self.config.delay_s)
        diff = self.x - self.means
        loss = float((diff ** 2).mean())
        self.x = self.x - self.config.lr * 2 * diff
        return {"loss": loss}

    def summary(self) -> Summary:
        return self._make_summary(self.x, self.y)


@contextlib.contextmanager
def registered() -> Iterator[type[ToyDistiller]]:
    """Register `toy` for the duration of a with-block (the registry is global)."""
    METHODS[ToyDistiller.name] = ToyDistiller
    try:
        yield ToyDistiller
    finally:
        METHODS.pop(ToyDistiller.name, None)


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll `predicate` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def job_threads() -> list[threading.Thread]:
    """The worker and evaluator threads of distillation jobs still alive in this process."""
    return [t for t in threading.enumerate() if t.name.startswith(("distill-job-", "distill-eval-"))]
