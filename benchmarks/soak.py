"""Soak test: a long live distillation with the distill page open in Chromium.

    python -m benchmarks.soak                  # 10 minutes, KIP on digits, IPC 10
    python -m benchmarks.soak --minutes 2      # shorter
    python -m benchmarks.soak --json soak.json # also keep the samples

Starts `streamlit run app.py` on a free localhost port (temporary runs folder), opens the distill page in Debian's
Chromium (Playwright, never `playwright install`), starts a run long enough to outlast the soak, and samples:

- the server's memory (RSS of the streamlit process, from /proc) and its thread count;
- the redraw rate: grid image changes per second seen in the page's DOM (a MutationObserver counts each new `src`
  of the archetype grid);
- the job's step (from the progress text).

At the end it presses Stop, closes the tab, and reports memory at 0 and at the end (target: growth < 50 MB), and
whether the server's thread count came back down once the session was gone. Linux only (/proc).
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from browserkit import (CHROMIUM, CHROMIUM_ARGS, GRID, Server, click, open_app, progress_text,  # noqa: E402
                        server_tracebacks, set_number, wait_status)

OBSERVER_JS = """(selector) => {
  window.__soak = {changes: 0, last: null};
  const count = () => {
    const img = document.querySelector(selector);
    const src = img ? img.getAttribute('src') : null;
    if (src && src !== window.__soak.last) { window.__soak.last = src; window.__soak.changes += 1; }
  };
  new MutationObserver(count).observe(document.body,
    {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
  count();
}"""


def _step(text: str) -> int | None:
    m = re.search(r"step ([\d,]+)", text)
    return int(m.group(1).replace(",", "")) if m else None


def soak(minutes: float, sample_s: float, method: str, dataset: str, ipc: int, log=print) -> dict:
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="distill-soak-"))
    server = Server(tmp / "runs", tmp / "streamlit.log")
    samples: list[dict] = []
    result: dict = {"minutes": minutes, "method": method, "dataset": dataset, "ipc": ipc}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            ctx.set_default_timeout(60_000)
            page = ctx.new_page()
            open_app(page, server, "")  # a first visit to the home page (see tests/browser/test_first_visit.py)
            open_app(page, server, "distill")
            rss_idle, threads_idle = server.rss_mb(), server.threads()
            if method:
                box = page.get_by_label("Method")
                box.click()
                page.get_by_role("option", name=re.compile(rf"^{re.escape(method)}\b")).click()
                page.wait_for_timeout(500)
            set_number(page, "Images per class (IPC)", ipc)
            set_number(page, "Steps", 1_000_000)
            click(page, "Start")
            page.locator(GRID).first.wait_for(timeout=180_000)
            wait_status(page, "running", 120)
            page.evaluate(OBSERVER_JS, GRID)
            t0 = time.monotonic()
            last_t, last_changes, last_step = t0, 0, _step(progress_text(page)) or 0
            end = t0 + minutes * 60
            while True:
                now = time.monotonic()
                changes = page.evaluate("() => window.__soak.changes")
                step = _step(progress_text(page)) or last_step
                dt = max(1e-6, now - last_t)
                row = {"t_s": round(now - t0, 1), "rss_mb": round(server.rss_mb(), 1), "threads": server.threads(),
                       "redraws_per_s": round((changes - last_changes) / dt, 2) if samples else None,
                       "steps_per_s": round((step - last_step) / dt, 1) if samples else None, "step": step}
                samples.append(row)
                log(f"t={row['t_s']:7.1f}s  rss={row['rss_mb']:7.1f} MB  threads={row['threads']:3d}  "
                    f"redraws/s={row['redraws_per_s']}  steps/s={row['steps_per_s']}  step={step}")
                last_t, last_changes, last_step = now, changes, step
                if now >= end:
                    break
                page.wait_for_timeout(int(min(sample_s, max(0.1, end - now)) * 1000))
            click(page, "Stop")
            wait_status(page, "stopped", 60)
            ctx.close()
            time.sleep(8)  # the session's release stops its job; give the threads time to end
            result["rss_after_close_mb"] = round(server.rss_mb(), 1)
            result["threads_after_close"] = server.threads()
            browser.close()
        rates = [s["redraws_per_s"] for s in samples[1:] if s["redraws_per_s"] is not None]
        result.update({
            "rss_idle_mb": round(rss_idle, 1), "threads_idle": threads_idle,
            "rss_start_mb": samples[0]["rss_mb"], "rss_end_mb": samples[-1]["rss_mb"],
            "rss_growth_mb": round(samples[-1]["rss_mb"] - samples[0]["rss_mb"], 1),
            "rss_max_mb": max(s["rss_mb"] for s in samples),
            "redraws_per_s_mean": round(statistics.fmean(rates), 2) if rates else None,
            "redraws_per_s_min": min(rates) if rates else None,
            "steps_done": samples[-1]["step"], "samples": samples,
            "server_log_tracebacks": len(server_tracebacks(server.log())),
        })
    finally:
        server.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sample-s", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--method", default="kip", help="method to pick on the distill page ('' keeps the default)")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--json", default=None, help="write the result (with every sample) to this file")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        sys.exit(f"error: {CHROMIUM} is missing (sudo apt-get install -y chromium)")
    r = soak(args.minutes, args.sample_s, args.method, args.dataset, args.ipc)
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2))
    print()
    print(f"{r['method']} on {r['dataset']}, IPC {r['ipc']}, {r['minutes']} min live with the page open")
    print("| t (s) | RSS (MB) | threads | redraws/s | steps/s | step |")
    print("|---|---|---|---|---|---|")
    for s in r["samples"]:
        print(f"| {s['t_s']} | {s['rss_mb']} | {s['threads']} | {s['redraws_per_s'] if s['redraws_per_s'] is not None else '—'} "
              f"| {s['steps_per_s'] if s['steps_per_s'] is not None else '—'} | {s['step']} |")
    print()
    print(f"server RSS: idle {r['rss_idle_mb']} MB, at 0 {r['rss_start_mb']} MB, at the end {r['rss_end_mb']} MB "
          f"(growth {r['rss_growth_mb']:+} MB, max {r['rss_max_mb']} MB; target growth < 50 MB)")
    print(f"redraws: {r['redraws_per_s_mean']}/s on average, {r['redraws_per_s_min']}/s at the slowest sample")
    print(f"threads: {r['threads_idle']} before the run, {r['threads_after_close']} after the tab closed; "
          f"RSS after close {r['rss_after_close_mb']} MB; tracebacks in the server log: {r['server_log_tracebacks']}")


if __name__ == "__main__":
    main()
