"""Content of the learn page: plain-words explanations and one-click presets that finish in under a minute on a
2-core CPU (each measured by `python -m benchmarks.presets`).

A preset names candidate method names (the first one registered is used), so it turns on by itself once the
method lands in `distill_core.methods.METHODS`; until then the page shows it disabled with a note. Its button
starts it at once: `as_request()` carries `"start": True` (`START_FLAG`), which the app honours right after
`state.apply_pending_preset()` by pressing Start for the user. Distiller presets start from noise
(`init=noise`) so the images visibly become digits; `before_after()` finds a stored pair of grids (step 0 and
the last step, written by `python -m benchmarks.presets --pairs assets/learn`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill_core.data import load_dataset
from distill_core.estimates import WARN_ABOVE_S, describe_seconds, estimate_seconds, first_use_seconds, needs_warning
from distill_core.methods import METHODS

START_FLAG = "start"    # key of a preset request: True asks the app to start the run as soon as it is configured
PAIRS_DIR = Path(__file__).resolve().parent.parent / "assets" / "learn"
MAX_PRESET_S = 60.0     # every preset finishes within this on a 2-core CPU (benchmarks/presets.py measures it)


@dataclass(frozen=True)
class Preset:
    """A distill-page configuration. `settings` not in the method's Config are ignored."""

    title: str
    methods: tuple[str, ...]          # candidate registry names, first registered wins
    dataset: str = "digits"
    ipc: int = 1
    steps: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    key: str = ""                     # stable name (file names of its before/after pair)

    @property
    def method(self) -> str | None:
        """The registered method this preset runs, or None if none of its names is registered yet."""
        return next((m for m in self.methods if m in METHODS), None)

    @property
    def available(self) -> bool:
        return self.method is not None

    @property
    def kind(self) -> str:
        name = self.method
        return METHODS[name].kind if name else "selector"

    def run_steps(self) -> int:
        """The steps the run will take (a selector does its work in one)."""
        if self.kind != "distiller":
            return 1
        return int(self.steps or getattr(METHODS[self.method], "default_steps", 1))

    def expected_seconds(self, stored: bool | None = None) -> float | None:
        """The estimate from measured seconds per step (`distill_core.estimates`); `stored` (see `stored()`) drops
        the experts' or teacher's first-use training when they are already stored (None: counted)."""
        name = self.method
        if name is None:
            return None
        return estimate_seconds(name, self.dataset, self.ipc, self.run_steps(), self.kind, stored=stored)

    def stored(self) -> bool | None:
        """Whether what this preset's run trains before its first step (experts, a teacher: with the preset's own
        settings) is stored already; None when it trains nothing first or that cannot be checked."""
        name = self.method
        if name is None or not METHODS[name].trains_first:
            return None
        try:
            cls = METHODS[name]
            config = cls.Config.from_overrides(self.dataset, self.as_request(start=False)["settings"], ipc=self.ipc)
            return cls.first_use_stored(load_dataset(self.dataset), config)
        except Exception:  # noqa: BLE001 - an estimate that counts the training is the safe side
            return None

    def as_request(self, start: bool = True) -> dict[str, Any]:
        """The dict `ui.state.request_preset` takes; `start` asks the app to start it at once."""
        name = self.method
        known = set(METHODS[name].Config.__dataclass_fields__) if name else set()
        settings = {k: v for k, v in self.settings.items() if k in known}
        return {"title": self.title, "method": name, "dataset": self.dataset, "ipc": self.ipc,
                "steps": self.steps, "seed": self.seed, "settings": settings, START_FLAG: bool(start)}

    def before_after(self) -> tuple[Path, Path] | None:
        """Paths of the stored step-0 and last-step grids of this preset, when both exist."""
        if not self.key:
            return None
        pair = (PAIRS_DIR / f"{self.key}-before.png", PAIRS_DIR / f"{self.key}-after.png")
        return pair if all(p.is_file() for p in pair) else None


def estimate_note(method: str, dataset: str, ipc: int, steps: int | None,
                  pixels: int | None = None, stored: bool | None = None) -> tuple[str, bool]:
    """(a line stating the expected time of a run, whether it deserves a warning: over WARN_ABOVE_S).
    `pixels` (C×H×W per image) lets an uploaded dataset borrow the measured rows of a named one; `stored`
    (`Method.first_use_stored`) drops the experts' or teacher's training when they are stored (None: unknown)."""
    cls = METHODS.get(method)
    kind = cls.kind if cls is not None else "distiller"
    n = int(steps or getattr(cls, "default_steps", 1)) if kind == "distiller" else 1
    secs = estimate_seconds(method, dataset, ipc, n, kind, pixels=pixels, stored=stored)
    if secs is None:
        return f"No timing has been measured for {method} on {dataset}; it may take a while on a CPU.", False
    first = first_use_seconds(method, dataset, stored=stored)
    if first is not None and stored is False:  # known to be missing: this run trains them, so they count
        secs += first
        once = (f" That includes {describe_seconds(first)} to train its experts first; they are stored, and later "
                f"runs on {dataset} reuse them.")
    elif first is not None:  # not looked up: said beside the estimate
        once = (f" A first {method} run on {dataset} also trains its experts before its first step: "
                f"{describe_seconds(first)} more, once (they are stored and reused).")
    elif stored and cls is not None and cls.trains_first:
        once = f" Its {cls.trains_first} {'are' if cls.trains_first.endswith('s') else 'is'} stored, not trained again."
    else:
        once = ""
    if needs_warning(secs):
        return (f"This run is expected to take {describe_seconds(secs)} on a 2-core CPU ({n:,} steps of {method} "
                f"at IPC {ipc} on {dataset}) — more than {WARN_ABOVE_S / 60:.0f} minutes. Fewer steps, a lower "
                f"IPC or the digits dataset are much faster.{once}"), True
    return f"Expected time on a 2-core CPU: {describe_seconds(secs)}.{once}", False


@dataclass(frozen=True)
class Topic:
    """One section of the learn page; `family` (a key of `distill_core.methods.FAMILIES`) groups the sections
    about methods under their family's heading ("" for the general ones)."""

    key: str
    title: str
    text: str
    presets: tuple[Preset, ...] = ()
    family: str = ""


TOPICS: tuple[Topic, ...] = (
    Topic("what", "What is dataset distillation?", """
**Dataset distillation** squeezes a whole training set into a handful of images — often just 1 to 50 per class —
chosen or *learned* so that a network trained only on them does almost as well as one trained on everything.
The small set is called a **summary**; its images are the dataset's **archetypes**.

It is not **knowledge distillation**. Knowledge distillation shrinks the *model*: a small student network learns
to copy a large teacher's outputs, and the data stays the same. Dataset distillation shrinks the *data*: the
network is an ordinary one, trained from scratch, but on a tiny synthetic training set.

Why bother? Tiny training sets make experiments fast (architecture search, continual learning replay), they
can be shared when the raw data cannot, and — the reason this lab exists — they show what a network *needs*
to see of each class.
""", (Preset("Random real images, 10 per class", ("random",), ipc=10, key="random"),)),
    Topic("coresets", "Coresets: picking real images", """
The oldest answer is a **coreset**: keep a few *real* images per class and throw the rest away. The baseline is
**random** selection. Smarter rules pick images that cover the class well:

- **Herding** adds, one at a time, the image that brings the running mean of the picks closest to the class
  mean (in a feature space).
- **k-center** (greedy) adds the image farthest from everything picked so far, so outliers are covered too.
- A coreset is always made of genuine photos, so it is easy to trust — but a few real images rarely carry
  everything a class looks like.
""", (Preset("Herding, 5 per class", ("herding",), ipc=5, key="herding"),
      Preset("k-center, 5 per class", ("kcenter", "k-center", "k_center"), ipc=5, key="kcenter")), "selection"),
    Topic("submodular", "Submodular selection", """
**Facility location** scores a set of picks by how well every image of the class is "served" by its most
similar pick, and grows the set greedily. The score is *submodular* — each extra pick helps less than the one
before — which is exactly the property that makes the greedy choice provably good (within 63% of the best
possible set). Libraries such as apricot implement it; here it is one more selector.
""", (Preset("Facility location, 5 per class", ("facility", "facility-location", "facility_location", "fl"),
             ipc=5, key="facility"),), "selection"),
    Topic("kmeans", "k-means prototypes", """
Cluster each class into *k* groups and keep the centre of each group. With *k* = 1 this is the **class mean**
— one blurry average image per class. Centres are not real images (they are averages), so this is the simplest
step from *selecting* towards *synthesising*. The **medoid** variant keeps the real image nearest each centre.
""", (Preset("k-means centres, 5 per class", ("kmeans", "k-means", "k_means"), ipc=5, key="kmeans"),
      Preset("Class mean (1 per class)", ("mean", "class-mean", "class_mean"), ipc=1, key="mean")), "selection"),
    Topic("kip", "KIP: kernel inducing points", """
**KIP** learns the pixels directly. It uses the fact that a very wide neural network behaves like a *kernel
machine* (the neural tangent kernel): training it on the summary has a closed-form answer, kernel ridge
regression. KIP adjusts the summary's pixels (and optionally its labels) by gradient descent so that this
closed-form predictor gets the real training images right. No network is ever trained in the loop, which makes
it fast on a CPU for small images.
""", (Preset("KIP on MNIST from noise, 1 per class", ("kip",), dataset="mnist-5k", ipc=1, steps=150,
             settings={"init": "noise", "lr_ipc1": 0.2}, key="kip-mnist-ipc1"),
      Preset("KIP on digits from noise, 10 per class", ("kip",), ipc=10, steps=200,
             settings={"init": "noise", "lr": 0.1}, key="kip-digits-ipc10")), "kernel"),
    Topic("kernel-fast", "RFAD and FRePo: faster kernels", """
KIP's exact kernel costs time that grows with the square of the real batch. Two later methods keep the idea —
fit the summary so that a closed-form predictor trained on it gets real images right — and make it cheaper:

- **RFAD** (random feature approximation) replaces the exact convolutional kernel by the inner product of the
  features of a few *random* networks, so the cost grows linearly with the data.
- **FRePo** (neural feature regression with pooling) trains one network alongside the summary and fits a ridge
  regression on its learned *features*, refreshing the network from a pool as it goes; it often learns the labels
  too.
""", (Preset("RFAD on digits from noise, 1 per class", ("rfad",), ipc=1, steps=200,
             settings={"init": "noise", "lr": 0.1, "width": 32, "num_models": 1, "target_batch": 300},
             key="rfad-digits-ipc1"),
      Preset("FRePo on digits, 1 per class (from real images)", ("frepo",), ipc=1, steps=50,
             settings={"init": "real"}, key="frepo-digits-ipc1")), "kernel"),
    Topic("dc", "DC and DSA: gradient matching", """
**Dataset condensation (DC)** trains a network on the real data and on the synthetic data side by side and
nudges the synthetic images so that both produce the *same gradients* on the network's weights — if the
gradients match, training on either set moves the network the same way. **DSA** (differentiable siamese
augmentation) applies the same random crops, flips, scalings and colour changes to both sides while matching,
which makes the learned images more useful under augmentation and usually more accurate.
""", (Preset("DC on digits from noise, 1 per class", ("dc", "gm"), ipc=1, steps=25,
             settings={"init": "noise"}, key="dc-digits-ipc1"),
      Preset("DSA on digits from noise, 1 per class", ("dsa",), ipc=1, steps=15,
             settings={"init": "noise"}, key="dsa-digits-ipc1")), "gradient"),
    Topic("dm", "DM: distribution matching", """
**Distribution matching** asks the synthetic images to look, *on average*, like the real ones through the eyes
of many randomly initialised networks: for each class, the mean embedding of the synthetic images should match
the mean embedding of a batch of real images. Nothing is trained — each step draws a fresh random network — so
it is among the cheapest distillers and scales to many images per class.

DM only asks the *average* embedding to match, so it starts from real images and moves them little: from noise it
needs thousands of steps before digits appear (the noise that does not change the average is never removed).
Compare the grid at step 0 and at the end in the replay — the changes are small and spread over the image.
""", (Preset("DM on digits, 10 per class (from real images)", ("dm",), ipc=10, steps=40,
             settings={"init": "real"}, key="dm-digits-ipc10"),), "distribution"),
    Topic("idm", "IDM: improved distribution matching", """
**IDM** keeps DM's cheap recipe and fixes its blind spots: the networks it matches through are *partly trained*
(kept in a queue and trained a little between uses) instead of always random, the synthetic images are split
into several smaller ones per slot, and a classification term keeps each class's images separable. The result is
DM's speed with accuracy much closer to the bi-level methods.
""", (Preset("IDM on digits, 10 per class (from real images)", ("idm",), ipc=10, steps=30,
             settings={"init": "real", "width": 16, "batch_real": 16, "lr": 1.0},
             key="idm-digits-ipc10"),), "distribution"),
    Topic("mtt", "MTT: matching training trajectories", """
**Matching training trajectories** first records *expert* trajectories: the weights of networks trained on the
full data, epoch after epoch. Then, starting from an expert's weights at some epoch, it trains a student for a
few steps on the synthetic images and asks the student to land where the expert landed a few epochs later.
Matching long stretches of training (not single gradients) gives the best images at the cost of the most compute.
""", (Preset("MTT on digits from noise, 1 per class", ("mtt",), ipc=1, steps=10,
             settings={"num_experts": 1, "init": "noise"}, key="mtt-digits-ipc1"),), "trajectory"),
    Topic("tesla-datm", "TESLA and DATM: trajectories at scale", """
**TESLA** computes MTT's gradient through the unrolled student training with memory that does not grow with the
number of student steps, and gives each synthetic image a soft label taken from a trained expert, so trajectory
matching reaches ImageNet-sized problems. **DATM** (difficulty-aligned trajectory matching) notices that early
expert epochs teach easy patterns and late ones hard patterns: it matches early stretches for small summaries and
later stretches for larger ones, and learns soft labels too.
""", (Preset("TESLA on digits, 1 per class (from real images)", ("tesla",), ipc=1, steps=10,
             settings={"init": "real", "num_experts": 1, "width": 8, "expert_train_epochs": 3, "max_start_epoch": 2,
                       "expert_epochs": 1, "syn_steps": 5, "batch_syn": 0, "lr": 10.0, "lr_teacher": 0.05,
                       "dsa": False}, key="tesla-digits-ipc1"),
      Preset("DATM on digits, 1 per class (from real images)", ("datm",), ipc=1, steps=10,
             settings={"init": "real", "num_experts": 1, "width": 8, "expert_train_epochs": 3, "max_start_epoch": 2,
                       "expert_epochs": 1, "syn_steps": 5, "batch_syn": 0, "lr": 10.0, "lr_teacher": 0.05,
                       "dsa": False}, key="datm-digits-ipc1")), "trajectory"),
    Topic("rded", "RDED: decoupled distillation", """
The **decoupled** methods drop the bi-level loop altogether. **RDED** trains one *teacher* network on the real
data and lets it do the judging: from each class it cuts many random crops out of real images, keeps the ones
the teacher finds most convincing (*realism*: the lowest cross-entropy of the true class), stitches several of
them into each synthetic image (*diversity*: 2 × 2 crops in one picture on ImageNet; on the small images here
one whole crop each, since a teacher cannot name a mosaic of 14-pixel crops), and finally **relabels** every image
with the teacher's soft labels (probabilities over all classes) instead of a single class. It runs in one pass,
in seconds, and scales to ImageNet.

Soft labels are half of the story. **random-soft** gives random real images the same teacher's soft labels:
benched beside `random` and `rded` it shows what the labels add and what RDED's crops add. (With this lab's
short SGD evaluation, soft labels need more training than hard ones to pay off — a known effect: the field trains
soft-label summaries much longer.)
""", (Preset("RDED on digits, 10 per class", ("rded",), ipc=10, key="rded-digits-ipc10"),
      Preset("Random images with the teacher's soft labels, 10 per class", ("random-soft",), ipc=10,
             key="random-soft-digits-ipc10")), "decoupled"),
    Topic("archetypes", "What the archetype images mean", """
Each row of the grid is one class; each image is one of its **archetypes**. For a coreset they are real
examples; for a k-means centre an average; for a distiller they are *whatever pixels teach a network that class
best*. They often look like exaggerated, high-contrast caricatures: strokes that separate a 3 from an 8 are
drawn boldly, backgrounds that do not help are flattened. Watching them evolve in the distill page shows the
optimisation discovering those features. They are not what the class "looks like on average" — they are what a
network needs to be *told* about it.
"""),
)


def all_presets() -> list[Preset]:
    return [p for t in TOPICS for p in t.presets]


def family_topics() -> list[tuple[str, list[Topic]]]:
    """The topics in page order, consecutive ones of one family together: [(family key or "", topics), ...]."""
    groups: list[tuple[str, list[Topic]]] = []
    for topic in TOPICS:
        if groups and groups[-1][0] == topic.family:
            groups[-1][1].append(topic)
        else:
            groups.append((topic.family, [topic]))
    return groups
