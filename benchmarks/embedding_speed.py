"""How fast the embedding page's maps appear.

    python -m benchmarks.embedding_speed                       # digits, 3 fresh processes per scenario (1 cold)
    python -m benchmarks.embedding_speed --dataset mnist-5k --reps 5 --cold-reps 2

Each fresh-process scenario starts a new Python process that does what the app does at server start
(`embed.warm_up([dataset])`, as app.py calls it) and then what the embedding page does for its first map: load the
dataset, get the map, place the class means (the page's default overlay), build the plotly figure and serialise it.
The time is measured from before the process is spawned (interpreter start and imports included) to the serialised
figure. Scenarios:

- `cold`: nothing cached — numba compiles umap's code (a fresh NUMBA_CACHE_DIR) and UMAP is fitted;
- `numba cached`: numba's disk cache is warm, the map is not (first use of a dataset);
- `all cached`: both caches warm — the usual server (re)start.

Then, in the last process: later maps (a page rerun with 20 new distilled-like images; switching to another feature
space whose map is on disk) and placing 100 new points (`Embedding.transform`, features included). Medians are printed
as a markdown table, with the targets: first map ≤ 10 s, later maps ≤ 2 s, 100 new points ≤ 0.5 s.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def _child(args: argparse.Namespace) -> None:
    t_spawn = args.t_spawn
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    from distill_core import embed
    from distill_core.data import load_dataset
    from ui import maps

    thread = embed.warm_up([args.dataset])   # what app.py does at server start
    ds = load_dataset(args.dataset)

    def page(space: str, extra=None) -> float:
        t = time.perf_counter()
        emb = embed.get_embedding(ds, space)
        overlays = [maps.prototype_overlay(emb, ds, "mean", 1)[0]]
        if extra is not None:
            overlays.append(maps.Overlay("run", "diamond", extra, ds.y_train[:len(extra)].numpy(),
                                         emb.transform(extra)))
        maps.map_figure(emb, ds.class_names, overlays).to_json()
        return time.perf_counter() - t

    page(args.space)
    first = time.time() - t_spawn
    thread.join()
    out = {"first_map_s": round(first, 3), "warm_info": embed.warm_info()}
    if args.later:
        gen = torch.Generator().manual_seed(0)
        reruns = [page(args.space, ds.x_train[:20] + 0.05 * torch.randn(20, *ds.image_shape, generator=gen))
                  for _ in range(args.later_reps)]
        other = "convnet-random" if args.space != "convnet-random" else "pixels"
        embed.get_embedding(ds, other)  # make sure its map is on disk, then forget it in memory
        switch = []
        for _ in range(args.later_reps):
            embed.clear_memory_cache()
            switch.append(page(other))
        place = {}
        for space in (args.space, other):
            emb = embed.get_embedding(ds, space)
            times = []
            for r in range(args.later_reps * 3):
                x = ds.x_test[:100] + 0.01 * torch.randn(100, *ds.image_shape, generator=gen)  # never seen before
                t = time.perf_counter()
                emb.transform(x)
                times.append(time.perf_counter() - t)
            place[space] = times
        out.update(rerun_s=reruns, switch_space_s=switch, other_space=other, place100_s=place)
    print(json.dumps(out))


def _spawn(args: argparse.Namespace, env: dict, later: bool) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.embedding_speed", "--child", "--dataset", args.dataset,
           "--space", args.space, "--later-reps", str(args.later_reps)] + (["--later"] if later else [])
    t_spawn = time.time()
    proc = subprocess.run(cmd + ["--t-spawn", repr(t_spawn)], env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"child failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else '?'}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--space", default="pixels")
    parser.add_argument("--reps", type=int, default=3, help="fresh processes per scenario")
    parser.add_argument("--cold-reps", type=int, default=1, help="fresh processes for the cold scenario (slow)")
    parser.add_argument("--later-reps", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--later", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--t-spawn", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return

    med = statistics.median
    rows: list[tuple[str, list[float]]] = []
    with tempfile.TemporaryDirectory(prefix="embed-bench-") as tmp:
        base = dict(os.environ)
        for scenario in ("cold", "numba cached", "all cached"):
            times = []
            for r in range(args.cold_reps if scenario == "cold" else args.reps):
                env = dict(base)
                if scenario == "cold":
                    env["NUMBA_CACHE_DIR"] = os.path.join(tmp, f"numba-cold-{r}")
                else:
                    env["NUMBA_CACHE_DIR"] = os.path.join(tmp, "numba")
                # a map cache of its own for every cold / numba-cached process (the cold ones fill theirs)
                env["DISTILL_CACHE_DIR"] = os.path.join(
                    tmp, "maps" if scenario == "all cached" else f"maps-{scenario.replace(' ', '-')}-{r}")
                if scenario == "numba cached" and r == 0:
                    _spawn(args, env | {"DISTILL_CACHE_DIR": os.path.join(tmp, "maps")}, False)  # fill both caches
                last = scenario == "all cached" and r == args.reps - 1
                res = _spawn(args, env, later=last)
                times.append(res["first_map_s"])
                print(f"{scenario} #{r + 1}: first map {res['first_map_s']:.2f} s "
                      f"(warm-up {res['warm_info'].get('compile_seconds', '?')} s)", file=sys.stderr, flush=True)
            rows.append((f"first map after a fresh process, {scenario}", times))
    rows.append(("later map: page rerun with 20 new images", res["rerun_s"]))
    rows.append((f"later map: switch to the {res['other_space']} space (map on disk)", res["switch_space_s"]))
    for space, times in res["place100_s"].items():
        rows.append((f"place 100 new points ({space}, features included)", times))

    import torch

    print(f"\n{args.dataset}, map space {args.space}, torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| measurement | median s | min s | max s | n |")
    print("|---|---|---|---|---|")
    for name, times in rows:
        print(f"| {name} | {med(times):.2f} | {min(times):.2f} | {max(times):.2f} | {len(times)} |")


if __name__ == "__main__":
    main()
