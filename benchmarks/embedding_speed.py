"""How fast the embedding page's maps appear.

    python -m benchmarks.embedding_speed                                  # mnist-5k, 3 fresh processes per scenario
    python -m benchmarks.embedding_speed --dataset digits --reps 5 --cold-reps 1

Every scenario starts new Python processes that do what the app does at server start (`embed.warm_up` of the
default dataset in `embed.SERVER_WARM_SPACES`, as app.py calls it) and then, at once, what the embedding page does
for its first map: load the dataset, get the map, place the class means (the page's default overlay), build the
plotly figure and serialise it. Two times are taken for every first map: "process start → map drawn" (from before
the process is spawned: interpreter start and imports included) and "page request → map drawn" (from the page's
call for the map, with the dataset loaded, as when a user switches to it). By default the page asks once the
server is up (`--request-at ready`: umap imported and its compiled code loaded, as a few seconds after a server
starts); `--request-at start` asks at once, so the request also waits for the server's own start-up work. Every
process gets its own fresh temporary cache folder. Scenarios:

- `never-mapped dataset`: numba's disk cache is warm and the default dataset's map is on disk (a usual server
  start), but `--dataset` has never been mapped: its pixels map is fitted. Target: 10 s.
- `trained-ConvNet map of a never-mapped dataset`: the same, in the convnet-trained space: the feature network is
  trained (not on disk), then the map is fitted. Target: 15 s. Where its time goes is printed (network training,
  the map's features, PCA + UMAP, the rest: overlays and the figure), with the map's class separation: the
  5-fold accuracy of a 10-nearest-neighbour classifier on the 2-D map, and the silhouette of the classes on it
  (both printed for the pixels map too, to compare).
- `all cached`: both maps on disk — the usual page visit after a (re)start. Then, in the last such process, later
  maps (a page rerun with 20 new distilled-like images; switching to the convnet-random space whose map is on disk)
  and placing 100 new points (`Embedding.transform`, features included). Targets: 2 s and 0.5 s.
  The CPU time each process used up to its first map is printed too: on a shared, loaded machine it says what the
  work costs when wall times mostly measure the wait for a core.
- `cold` (only with --cold-reps N): nothing cached at all, numba compiles umap's code (a fresh NUMBA_CACHE_DIR).

Medians are printed as a markdown table with the targets. The timings depend on the machine's load: run it on an
idle machine, and compare medians.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


TARGETS = {"never": 10.0, "trained": 15.0, "cached": 2.0, "later": 2.0, "place": 0.5}


def _child(args: argparse.Namespace) -> None:
    t_spawn = args.t_spawn
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    from distill_core import embed
    from distill_core.data import load_dataset
    from ui import maps

    thread = embed.warm_up([args.default], spaces=embed.SERVER_WARM_SPACES)   # what app.py does at server start
    ds = load_dataset(args.dataset)
    while args.request_at == "ready" and not embed.is_warm() and thread.is_alive():
        time.sleep(0.02)

    cpu_of_page: list[float] = []

    def page(space: str, extra=None) -> float:
        t, c = time.perf_counter(), time.thread_time()
        emb = embed.get_embedding(ds, space)
        overlays = [maps.prototype_overlay(emb, ds, "mean", 1)[0]]
        if extra is not None:
            overlays.append(maps.Overlay("run", "diamond", extra, ds.y_train[:len(extra)].numpy(),
                                         emb.transform(extra)))
        maps.map_figure(emb, ds.class_names, overlays).to_json()
        cpu_of_page.append(time.thread_time() - c)
        return time.perf_counter() - t

    request = page(args.space)
    request_cpu = cpu_of_page[0]  # the page's thread alone: what the request costs without waiting for a core
    first = time.time() - t_spawn
    cpu = time.process_time()  # every thread of this process, the warm-up's included
    thread.join()
    emb = embed.get_embedding(ds, args.space)
    out = {"first_map_s": round(first, 3), "request_s": round(request, 3), "cpu_s": round(cpu, 3),
           "warm_info": embed.warm_info(), "quality": map_quality(emb.coords, emb.labels),
           "request_cpu_s": round(request_cpu, 3),
           "phases": {} if emb.from_disk else {"features": emb.feature_seconds, "pca+umap": emb.layout_seconds}}
    if args.space == "convnet-trained":
        out["net"] = embed.feature_space(ds, args.space).info
        if not out["net"].get("cached"):
            out["phases"]["training"] = out["net"].get("seconds", 0.0)
    out["phases"]["rest"] = round(request - sum(out["phases"].values()), 2)
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


def map_quality(coords, labels) -> dict:
    """Class separation on a 2-D map: 5-fold accuracy of a 10-nearest-neighbour classifier, and the silhouette."""
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    knn = cross_val_score(KNeighborsClassifier(10), coords, labels, cv=5).mean()
    return {"knn10": round(float(knn), 3), "silhouette": round(float(silhouette_score(coords, labels)), 3)}


def _spawn(args: argparse.Namespace, env: dict, space: str, later: bool = False) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.embedding_speed", "--child", "--dataset", args.dataset,
           "--default", args.default, "--space", space, "--later-reps", str(args.later_reps),
           "--request-at", args.request_at] \
        + (["--later"] if later else [])
    t_spawn = time.time()
    proc = subprocess.run(cmd + ["--t-spawn", repr(t_spawn)], env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"child failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else '?'}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist-5k", help="the dataset whose first map is measured")
    parser.add_argument("--default", default="digits", help="the dataset the server warms up (app.py's default)")
    parser.add_argument("--reps", type=int, default=3, help="fresh processes per scenario")
    parser.add_argument("--cold-reps", type=int, default=0, help="fresh processes with nothing cached (slow)")
    parser.add_argument("--later-reps", type=int, default=5)
    parser.add_argument("--request-at", choices=("ready", "start"), default="ready",
                        help="when the page asks for its map: once the server is up (default) or at process start")
    parser.add_argument("--space", default="pixels", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--later", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--t-spawn", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return

    med = statistics.median
    load_start = os.getloadavg()[0]
    rows: list[tuple[str, list[float], list[float], float]] = []
    extra: list[str] = []
    cpu_rows: list[tuple[str, list[float], list[float]]] = []
    with tempfile.TemporaryDirectory(prefix="embed-bench-") as tmp:
        numba_dir = os.path.join(tmp, "numba")
        template = os.path.join(tmp, "template")   # numba's cache + the default dataset's map: a usual server
        base = dict(os.environ, NUMBA_CACHE_DIR=numba_dir)
        prep = argparse.Namespace(**{**vars(args), "dataset": args.default})
        _spawn(prep, base | {"DISTILL_CACHE_DIR": template}, "pixels")
        scenarios = [("cold", "pixels", args.cold_reps, "never"),
                     ("never-mapped dataset", "pixels", args.reps, "never"),
                     ("trained-ConvNet map of a never-mapped dataset", "convnet-trained", args.reps, "trained"),
                     ("all cached", "pixels", args.reps, "cached")]
        for scenario, space, reps, target in scenarios:
            firsts, requests, cpus, request_cpus = [], [], [], []
            for r in range(reps):
                cache = os.path.join(tmp, f"maps-{target}-{r}")
                if target == "cached":
                    cache = os.path.join(tmp, "maps-never-0")  # the dataset's map fitted by the first scenario
                elif scenario != "cold":
                    shutil.copytree(template, cache)
                env = base | {"DISTILL_CACHE_DIR": cache}
                if scenario == "cold":
                    env["NUMBA_CACHE_DIR"] = os.path.join(tmp, f"numba-cold-{r}")
                res = _spawn(args, env, space, later=target == "cached" and r == reps - 1)
                firsts.append(res["first_map_s"])
                requests.append(res["request_s"])
                cpus.append(res.get("cpu_s", float("nan")))
                request_cpus.append(res.get("request_cpu_s", float("nan")))
                q, ph = res.get("quality", {}), res.get("phases", {})
                where = ", ".join(f"{k} {v:.2f} s" for k, v in ph.items())
                extra.append(f"{scenario} #{r + 1}: {res['request_s']:.2f} s from the request "
                             f"({res.get('request_cpu_s', float('nan')):.2f} s of the page thread's CPU time) = "
                             f"{where}; map class "
                             f"separation: 10-NN accuracy {q.get('knn10')}, silhouette {q.get('silhouette')}")
                if "net" in res:
                    net = res["net"]
                    extra.append(f"feature ConvNet #{r + 1}: {net.get('steps')} steps on {net.get('train_images')} "
                                 f"images in {net.get('seconds')} s, test accuracy {net.get('test_acc', 0):.3f}")
                print(f"{scenario} #{r + 1}: first map {res['first_map_s']:.2f} s after the process started, "
                      f"{res['request_s']:.2f} s after the page asked", file=sys.stderr, flush=True)
                last = res
            if reps:
                rows.append((f"first map after server start, {scenario}", firsts, requests, TARGETS[target]))
                cpu_rows.append((scenario, cpus, request_cpus))
    if "rerun_s" in last:
        rows.append(("later map: page rerun with 20 new images", last["rerun_s"], [], TARGETS["later"]))
        rows.append((f"later map: switch to the {last['other_space']} space (map on disk)", last["switch_space_s"],
                     [], TARGETS["later"]))
        for space, times in last["place100_s"].items():
            rows.append((f"place 100 new points ({space}, features included)", times, [], TARGETS["place"]))

    import torch

    print(f"\n{args.dataset} (server warms up {args.default}; the page asks at {args.request_at}), "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end\n")
    print("| measurement | median s: process start → map drawn | min s | max s | n | "
          "median s: page request → map drawn | target s | met (from the request where measured) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, times, requests, target in rows:
        req = f"{med(requests):.2f}" if requests else ""
        judged = med(requests) if requests else med(times)
        print(f"| {name} | {med(times):.2f} | {min(times):.2f} | {max(times):.2f} | {len(times)} | {req} | "
              f"≤ {target:g} | {'yes' if judged <= target else 'NO'} |")
    for scenario, cpus, request_cpus in cpu_rows:
        print(f"- {scenario}: the process used {med(cpus):.2f} s of CPU time up to its first map (median; "
              f"imports and the warm-up thread included), the page's request {med(request_cpus):.2f} s in its own "
              f"thread; on an idle machine the wall times are about these or less")
    for line in extra:
        print(f"- {line}")


if __name__ == "__main__":
    main()
