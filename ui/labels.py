"""Every method setting in words: a human label, a one-sentence tooltip, its choices, and whether it is advanced.

The distill page reads a method's settings from its dataclass `Config` and draws each field with the words here.
`WORDS` is keyed by the field's name (one entry serves every method with that field); `OVERRIDES` replaces
the entry for one method where the same name means something else there. A tooltip says what the setting does
and what raising it costs or gains. `choices` turns a text field into a select box (a tuple, or a function that
lists them at run time). `advanced` settings are folded away under "Advanced".

`tests/test_labels.py` checks that every field of every registered method's Config has words here, so a new
method without them fails the test. Pure data: no Streamlit import.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence, Union

from distill_core.kernels import KERNEL_NAMES

Choices = Union[Sequence[str], Callable[[], Sequence[str]], None]


@dataclass(frozen=True)
class Words:
    """How one setting reads on the page."""

    label: str
    help: str
    choices: Choices = None
    advanced: bool = False

    def options(self) -> list[str] | None:
        """The choices as a list (None: a free value)."""
        if self.choices is None:
            return None
        return list(self.choices() if callable(self.choices) else self.choices)


def _support_names() -> list[str]:
    from distill_core.methods.label_solve import support_names

    return support_names()


def _label_solve_modes() -> list[str]:
    from distill_core.methods.kip import LABEL_SOLVE_MODES

    return list(LABEL_SOLVE_MODES)


def _label_losses() -> list[str]:
    from distill_core.evaluate import LABEL_LOSSES

    return list(LABEL_LOSSES)


def _spaces() -> list[str]:
    from distill_core.methods.selectors import SPACE_NAMES

    return list(SPACE_NAMES)


# one entry per field name; a method whose field means something else gets an entry in OVERRIDES
WORDS: dict[str, Words] = {
    # ---- where the summary starts, and how fast it moves
    "init": Words("Start from", "real: the images start as a seeded pick of real images per class; noise: they "
                  "start as random noise, which is slower to converge but shows the evolution towards each class.",
                  choices=("real", "noise")),
    "lr": Words("Image learning rate", "How far the synthetic images move per step: higher learns faster but can "
                "overshoot into noisy images; lower is steadier but needs more steps."),
    "lr_ipc1": Words("Image learning rate at IPC 1", "The image learning rate used when each class has a single "
                     "image, which must move further from its real start: higher learns faster, but too high "
                     "turns the image to noise."),
    "momentum": Words("Image momentum", "How much of the previous update each image step keeps: higher smooths "
                      "and speeds the optimisation but can oscillate.", advanced=True),
    "half_life": Words("Learning-rate half-life (steps)", "Steps after which the learning rates have halved "
                       "(0 keeps them constant): a decay settles the images late in a long run but slows it.",
                       advanced=True),
    # ---- the networks the distiller matches through
    "width": Words("Network width (channels)", "Channels of the ConvNet the images are distilled through: wider "
                   "matches the paper's networks better but each step is slower (time grows with width²)."),
    "depth": Words("Network depth (blocks)", "Convolution blocks of the distilling ConvNet: deeper sees larger "
                   "patterns but costs more per step and can diverge on tiny images.", advanced=True),
    "dsa": Words("Augment (DSA)", "Apply the same random crops, flips, scales and colour changes to real and "
                 "synthetic images: summaries generalise better at a small cost per step."),
    "batch_real": Words("Real images per class per step", "How many real images of each class every step compares "
                        "against: more gives a steadier signal but each step is slower."),
    # ---- kernel methods
    "kernel": Words("Kernel", "The similarity the summary is fitted with: ntk and nngp are the kernels of an "
                    "infinitely wide ReLU network (ntk of its training, nngp of its random features), rbf a "
                    "Gaussian of pixel distance.", choices=KERNEL_NAMES),
    "w_var": Words("Weight variance σ_w²", "Variance of the infinite network's weights behind the kernel: it "
                   "scales how strongly deep layers amplify differences between images.", advanced=True),
    "b_var": Words("Bias variance σ_b²", "Variance of the infinite network's biases: larger adds a constant "
                   "similarity between all images, which flattens the kernel.", advanced=True),
    "gamma": Words("RBF width γ", "rbf kernel only: how fast similarity falls with pixel distance; higher makes "
                   "only near-identical images similar.", advanced=True),
    "ridge": Words("Ridge (relative)", "Regularisation of the kernel regression, relative to the kernel's average "
                   "diagonal: higher is more stable numerically but fits the labels less closely.", advanced=True),
    "target_batch": Words("Real images per step", "How many real training images (class-balanced) each step "
                          "fits the summary to: more gives a steadier signal but each step is slower, and it "
                          "cannot exceed the training images."),
    "learn_labels": Words("Learn the labels", "Optimise the summary's labels (soft targets) together with its "
                          "images: usually more accurate per image, but the labels are no longer plain classes."),
    "label_lr": Words("Label learning rate", "How far the learned labels move per step (when labels are "
                      "learned): higher adapts faster but can make them unstable.", advanced=True),
    "shift": Words("Shift real images (pixels)", "Randomly translate each step's real images by up to this many "
                   "pixels: stretches a small training set, at the cost of a slightly blurrier target.",
                   advanced=True),
    "clip": Words("Keep pixels in range", "Clamp the synthetic images to valid pixel values after each step: they "
                  "stay viewable as images, at a small cost in how well they fit.", advanced=True),
    "float64": Words("Double precision", "Optimise in 64-bit floats: numerically safer for checks, but about "
                     "twice as slow.", advanced=True),
    "label_solve": Words("Solve the labels", "none: plain class labels; after: solve the best soft labels for the "
                         "final images once; during: also solve them every few steps and continue with them "
                         "(more accurate, slower).", choices=_label_solve_modes),
    "label_solve_every": Words("Solve labels every (steps)", "With label solving during the run, steps between "
                               "solves: fewer steps track the images more closely but cost a solve each time.",
                               advanced=True),
    "label_solve_target": Words("Real images the labels fit", "How many real training images (class-balanced) "
                                "the solved labels are fitted to: more fits them better but each solve is slower.",
                                advanced=True),
    "label_loss": Words("Label loss", "How a network trains on the summary's labels: auto picks by method, ce "
                        "is plain cross-entropy, mse regresses the label vectors, soft_ce treats them as class "
                        "probabilities.", choices=_label_losses),
    # ---- gradient matching
    "outer_loop": Words("Image updates per network", "How many times the images are updated against each fresh "
                        "network (0: by IPC, as the authors did): more squeezes more out of each network but costs "
                        "steps.", advanced=True),
    "inner_loop": Words("Network epochs between updates", "Epochs the matching network trains on the synthetic "
                        "set between image updates (0: by IPC): more follows training further but each step is "
                        "slower.", advanced=True),
    "image_lr_factor": Words("Image learning-rate factor", "The image learning rate is multiplied by this (0: by "
                             "IPC): larger moves the images further in a short run but can make them noisy.",
                             advanced=True),
    "lr_net": Words("Network learning rate", "Learning rate of the network trained between image updates: higher "
                    "moves it along training faster, too high makes the matched gradients erratic.", advanced=True),
    "batch_train": Words("Network batch size", "Batch size of the network trained between image updates: larger "
                         "is steadier and, on a CPU, slower per batch.", advanced=True),
    # ---- trajectory matching
    "lr_lr": Words("Step-size learning rate", "How fast the student's learned learning rate adapts: higher finds "
                   "a good rate sooner but can make it swing.", advanced=True),
    "lr_teacher": Words("Expert learning rate", "Learning rate of the expert networks whose training is matched, "
                        "and the student's starting rate: higher covers more of training per epoch."),
    "syn_steps": Words("Student steps per update", "How many steps the student network takes on the synthetic "
                       "images per update: more matches a longer stretch of the expert, at a higher cost and "
                       "memory per step."),
    "expert_epochs": Words("Expert epochs to match", "How many epochs of the expert's training the student's "
                           "steps must cover: more asks the summary to stand for more training.", advanced=True),
    "max_start_epoch": Words("Latest start epoch", "Matching starts at a random expert epoch below this: higher "
                             "also teaches the later part of training, lower focuses on its start.", advanced=True),
    "batch_syn": Words("Synthetic images per student step", "How many synthetic images each student step sees "
                       "(0: all of them): fewer is faster and noisier.", advanced=True),
    "num_experts": Words("Expert networks", "How many expert trajectories to match against (trained once and "
                         "cached when missing): more gives variety but trains more experts first."),
    "expert_train_epochs": Words("Expert training epochs", "Epochs each expert is trained for: longer "
                                 "trajectories allow later start epochs but take longer to train once.",
                                 advanced=True),
    "experts_dir": Words("Experts folder", "Where expert trajectories are stored and reused (empty: the default "
                         "cache folder); a shared folder saves training them again.", advanced=True),
    # ---- selectors
    "space": Words("Distances in", "Where image similarity is measured: raw pixels, or the features of a random "
                   "or briefly trained ConvNet (slower, closer to what a network sees).", choices=_spaces),
    "n_init": Words("Restarts of k-means", "k-means runs per class from different starts and keeps the best: more "
                    "restarts find better centres but take longer.", advanced=True),
    "max_iter": Words("Iterations of k-means", "Most iterations of one k-means run: more lets it converge on large "
                      "classes, at more time.", advanced=True),
    "max_pool": Words("Candidates per class", "Most images per class the selection considers (a seeded sample "
                      "above this): more can find better picks, but memory grows with its square.", advanced=True),
    # ---- label solve
    "support": Words("Pick images with", "The selection method that picks the images whose labels are then "
                     "solved.", choices=_support_names),
    "target_size": Words("Real images the labels fit", "How many real training images (class-balanced) the "
                         "labels are solved against: more fits them better but the solve takes longer.",
                         advanced=True),
}

# (method, field) -> words, where a field means something else in that method
OVERRIDES: dict[tuple[str, str], Words] = {
    ("kip", "depth"): Words("Kernel depth (hidden layers)", "Hidden ReLU layers of the infinitely wide network "
                            "behind ntk/nngp: deeper captures more abstract similarity but can flatten the kernel."),
    ("ls", "depth"): Words("Kernel depth (hidden layers)", "Hidden ReLU layers of the infinitely wide network "
                           "behind ntk/nngp: deeper captures more abstract similarity but can flatten the kernel.",
                           advanced=True),
    ("kip", "lr"): Words("Image learning rate", "Adam step size of the images (IPC 2 and up): higher learns "
                         "faster but can overshoot into noisy images; lower is steadier but needs more steps."),
    ("dm", "lr"): Words("Image learning rate", "How far the images move per step to match the real class means: "
                        "higher learns faster but can overshoot; lower needs more steps."),
    ("mtt", "lr"): Words("Image learning rate", "How far the images move per step (large, since the matching loss "
                         "is tiny): higher learns faster but can blow the images up."),
    ("mtt", "dsa"): Words("Augment (DSA)", "Augment the student's batches and the experts' training with the same "
                          "random crops, flips and colour changes: better generalisation, slightly more time."),
}


def words(method: str, field_name: str) -> Words | None:
    """The words of one setting of one method (its override first), or None when none are written."""
    return OVERRIDES.get((method, field_name)) or WORDS.get(field_name)


def config_fields(config_cls: type) -> list[str]:
    """The settings of a method: the fields of its dataclass Config."""
    return [f.name for f in dataclasses.fields(config_cls)]


def missing_words(methods: dict[str, type]) -> list[str]:
    """`method.field` for every Config field of the given methods that has no words (empty: all covered)."""
    return [f"{name}.{field}" for name, cls in sorted(methods.items()) for field in config_fields(cls.Config)
            if words(name, field) is None]
