"""DM's batched step against a one-forward-per-class loop, side by side in one process.

    python -m benchmarks.dm_speed                    # mnist-5k, IPC 1 and 10, 15 timed repeats each
    python -m benchmarks.dm_speed --ipc 10 --repeats 30 --threads 1

All compute the same thing on the same data: one frozen, freshly initialised ConvNet (the `dm` defaults for the
dataset), one real batch per class (`batch_real` images) and one DSA draw per class shared by that class's real and
synthetic images (the step's own augmentation, one family per draw; the repeats cycle through the same draws).
What is timed is a step's work on the images: augmentation, embeddings, loss, backward to the images.

- `batched`: the library's step (`distill_core.methods.dm`): every class augmented in one call, the real images of
  all classes embedded together without autograd, the synthetic images of all classes together, one backward; on a
  CPU in slices of `CPU_CHUNK` images (whatever their classes).
- `one pass`: the same as a single pass per set (what the step did before slicing).
- `per-class`: the straightforward reference kept here, not in the library (as DM's published code does it): for
  each class, augment its real and synthetic images, embed each in its own pass, add the squared distance of their
  means; then one backward.
- `per-class joint`: the same loop with literally one forward pass per class (real and synthetic images together);
  the backward then also runs through the real images' activations.

Before timing, the losses and image gradients are checked to agree. The three are timed in turn within each repeat
(so a change in the machine's load hits all alike); prints medians with quartiles and the ratio of the medians
(target: batched ≥ 3× faster than the per-class loop on a CPU).
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from distill_core.augment import AugmentDraw, SiameseAugment
from distill_core.data import load_dataset
from distill_core.methods import create_method
from distill_core.methods.dm import CPU_CHUNK, dm_loss


def per_class_loss(net: torch.nn.Module, x_real: torch.Tensor, x_syn: torch.Tensor, draw: AugmentDraw,
                   num_classes: int) -> torch.Tensor:
    """The reference: class by class, augment, embed the real batch, embed the synthetic images, compare means."""
    real, syn = x_real.chunk(num_classes), x_syn.chunk(num_classes)
    loss = x_syn.new_zeros(())
    for c in range(num_classes):
        one = AugmentDraw(draw.families, {k: v[c:c + 1] for k, v in draw.params.items()}, 1)
        emb_real = net.embed(one(real[c])).detach()
        emb_syn = net.embed(one(syn[c]))
        loss = loss + ((emb_real.mean(0) - emb_syn.mean(0)) ** 2).sum()
    return loss


def per_class_joint_loss(net: torch.nn.Module, x_real: torch.Tensor, x_syn: torch.Tensor, draw: AugmentDraw,
                         num_classes: int) -> torch.Tensor:
    """The reference with literally one forward per class: real and synthetic images of a class in one pass.

    Autograd then records the real images' pass too, and the backward runs through it (with zero gradients)."""
    real, syn = x_real.chunk(num_classes), x_syn.chunk(num_classes)
    loss = x_syn.new_zeros(())
    for c in range(num_classes):
        one = AugmentDraw(draw.families, {k: v[c:c + 1] for k, v in draw.params.items()}, 1)
        emb = net.embed(torch.cat([one(real[c]), one(syn[c])]))
        emb_real, emb_syn = emb[:len(real[c])].detach(), emb[len(real[c]):]
        loss = loss + ((emb_real.mean(0) - emb_syn.mean(0)) ** 2).sum()
    return loss


def batched_loss(net: torch.nn.Module, x_real: torch.Tensor, x_syn: torch.Tensor, draw: AugmentDraw,
                 num_classes: int, cpu_path: bool = True) -> torch.Tensor:
    """The library's computation (as in `DistributionMatching._step`): one augmentation call per set, `dm_loss`."""
    n_real, n_syn = len(x_real) // num_classes, len(x_syn) // num_classes
    group_real = torch.arange(num_classes).repeat_interleave(n_real)
    group_syn = torch.arange(num_classes).repeat_interleave(n_syn)
    return dm_loss(net, draw(x_real, group_real), draw(x_syn, group_syn), num_classes, CPU_CHUNK if cpu_path else 0)


def _quartiles(xs: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return q[0], statistics.median(xs), q[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--ipc", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--draws", type=int, default=10, help="augmentation draws cycled through by the repeats")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    ds = load_dataset(args.dataset)
    c = ds.num_classes
    print(f"{ds.name}, DM step on the images (augment, embed, loss, backward), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.repeats} repeats, medians in ms (quartiles)\n")
    print("| IPC | width | real/class | batched | one pass | per-class | per-class joint | per-class / batched "
          "| joint / batched |")
    print("|---|---|---|---|---|---|---|---|---|")
    for ipc in args.ipc:
        method = create_method("dm", ds, ipc, seed=0, device="cpu")
        cfg = method.config
        net = method.fresh_network(seed=0).requires_grad_(False)
        x_real, _ = method.real_batches(cfg.batch_real)
        gen = torch.Generator().manual_seed(0)
        draws = [SiameseAugment.for_dataset(ds.name).draw(gen, groups=c) for _ in range(args.draws)]
        variants: dict[str, Callable[..., torch.Tensor]] = {
            "batched": batched_loss,
            "one pass": lambda *a: batched_loss(*a, cpu_path=False),
            "per-class": per_class_loss,
            "per-class joint": per_class_joint_loss,
        }
        images = {name: method.images.detach().clone().requires_grad_(True) for name in variants}
        for draw in draws[:2]:  # agreement (and warm-up)
            results = {}
            for name, fn in variants.items():
                images[name].grad = None
                loss = fn(net, x_real, images[name], draw, c)
                loss.backward()
                results[name] = (loss.detach(), images[name].grad.clone())
            ref_loss, ref_grad = results["per-class"]
            for name, (loss, grad) in results.items():
                grad_err = float((grad - ref_grad).norm() / ref_grad.norm())
                if not (torch.allclose(loss, ref_loss, rtol=1e-4) and grad_err < 1e-4):
                    raise SystemExit(f"IPC {ipc}: {name} disagrees with per-class (loss {float(loss)} vs "
                                     f"{float(ref_loss)}, relative gradient difference {grad_err:.2g})")
        times: dict[str, list[float]] = {name: [] for name in variants}
        for r in range(args.repeats):
            draw = draws[r % len(draws)]
            for name, fn in variants.items():
                images[name].grad = None
                t0 = time.perf_counter()
                fn(net, x_real, images[name], draw, c).backward()
                times[name].append(time.perf_counter() - t0)
        q = {name: _quartiles(t) for name, t in times.items()}
        cells = " | ".join(f"{1000 * q[n][1]:.1f} ({1000 * q[n][0]:.1f}–{1000 * q[n][2]:.1f})" for n in variants)
        print(f"| {ipc} | {cfg.width} | {len(x_real) // c} | {cells} | "
              f"{q['per-class'][1] / q['batched'][1]:.2f}× | {q['per-class joint'][1] / q['batched'][1]:.2f}× |",
              flush=True)


if __name__ == "__main__":
    main()
