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
from distill_core.teachers import TEACHER_AUGMENTS

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
    "init": Words("Start from", "real: a seeded random pick of real images per class; herding: the herding "
                  "coreset's images, which the distiller must improve on; noise: random noise, slower to converge "
                  "but it shows the evolution towards each class.",
                  choices=("real", "herding", "noise")),
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
    "precision": Words("Arithmetic precision", "fp32 computes in full precision; bf16 runs the networks' forward "
                       "passes in bfloat16, faster on GPUs with bf16 units (losses and image gradients within a few "
                       "per cent) and usually slower on a CPU.", choices=("fp32", "bf16"), advanced=True),
    "channels_last": Words("Channels-last layout", "Store the networks and real images channels-last: the same "
                           "numbers in another memory order, often faster for convolutions on GPUs (MTT's unrolled "
                           "student keeps its own layout).", advanced=True),
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
    # ---- memory (large runs)
    "class_batch": Words("Classes per pass", "How many classes share one forward and backward pass (0: all, or as "
                         "many as fit in the device's memory): fewer needs less memory, the result is the same.",
                         advanced=True),
    "checkpoint": Words("Recompute unrolled steps", "Recompute each unrolled student step during the backward pass "
                        "instead of keeping it: far less memory for about a third more time, same gradient.",
                        advanced=True),
    # ---- random-feature and feature-regression kernels (rfad, frepo)
    "num_models": Words("Random networks per step", "How many freshly drawn random ConvNets estimate the kernel "
                        "each step: more gives a steadier kernel but each step costs more."),
    "b_std": Words("Bias spread of random convolutions", "Standard deviation of the random networks' convolution "
                   "biases, part of the kernel's definition.", advanced=True),
    "loss": Words("Loss", "platt: cross-entropy of the regression's predictions with a learned temperature (RFAD); "
                  "mse: KIP's squared error.", choices=("platt", "mse")),
    "temperature_lr": Words("Temperature learning rate", "Adam step size of the Platt loss's log-temperature: "
                            "higher adapts the loss's sharpness faster.", advanced=True),
    "pool_size": Words("Networks in the pool", "How many online-trained networks the features come from: more "
                       "gives more varied features but costs memory.", advanced=True),
    "max_age": Words("Network lifetime (updates)", "Online updates after which a pool network is replaced by a "
                     "fresh one: longer lets features mature but narrows their variety.", advanced=True),
    "net_lr": Words("Pool networks' learning rate", "Adam step size of the pool's networks as they train on the "
                    "synthetic set: higher matures their features faster.", advanced=True),
    "lr_end_factor": Words("Final learning-rate fraction", "The image learning rate decays (cosine) to this "
                           "fraction of its start by the last step: lower settles the images more.", advanced=True),
    "margin_weight": Words("Label margin weight", "Weight of the term that keeps learned labels' true class ahead "
                           "of the others (0: off).", advanced=True),
    "flip": Words("Also regress from mirror images", "Regress from the mirrored synthetic images too, as the "
                  "paper does on colour sets: more varied support, twice the features per step.", advanced=True),
    # ---- improved distribution matching (idm)
    "num_nets": Words("Networks in the queue", "Length of the queue of partly trained networks the images are "
                      "matched through: longer gives more varied networks but more memory.", advanced=True),
    "net_interval": Words("Steps between new networks", "A fresh network joins the queue every this many steps: "
                          "shorter keeps the queue younger.", advanced=True),
    "train_nets": Words("Networks trained per step", "Queue networks that take training steps on real images at "
                        "every step: more matures the queue faster at more cost.", advanced=True),
    "net_train_steps": Words("Training steps per network", "SGD steps each picked queue network takes per step on "
                             "real images.", advanced=True),
    "ce_weight": Words("Class-aware term weight", "Weight of the cross-entropy that keeps synthetic features "
                       "classifiable by the network: higher makes classes more separable, too high drowns the "
                       "matching."),
    # ---- trajectory matching with learned labels (tesla, datm)
    "soft_labels": Words("Learn soft labels", "Learn one label vector per image, started from the experts' "
                         "predictions: richer targets, but networks need longer training to use them."),
    "lr_label": Words("Label learning rate", "SGD step size of the learned label logits: higher moves the labels "
                      "faster.", advanced=True),
    "momentum_label": Words("Label momentum", "SGD momentum of the learned label logits.", advanced=True),
    "label_epoch": Words("Expert epoch for labels", "The expert epoch whose predictions start the learned labels "
                         "(0: the last epoch).", advanced=True),
    "exact": Words("Exact gradient", "Carry the gradient back through every unrolled step, equal to MTT's; off: "
                   "TESLA's cheaper first-order gradient.", advanced=True),
    "min_start_epoch": Words("Earliest start epoch", "The lower end of the window of expert epochs the matching "
                             "starts from.", advanced=True),
    "current_max_start_epoch": Words("Start window's first upper end", "The window's upper end at the start, "
                                     "growing to the latest start epoch (0: the latest throughout).",
                                     advanced=True),
    "expansion_end": Words("Window growth (steps)", "Steps over which the start window grows to its full width "
                           "(0: no growth).", advanced=True),
    "threshold": Words("Skip threshold", "Updates whose matching loss is above this are skipped, so that too hard "
                       "segments of the trajectory do not disturb the images.", advanced=True),
    "init_correct": Words("Start from well-classified images", "With real starts: use only real images the "
                          "expert classifies correctly, as DATM does."),
    # ---- decoupled (rded) and teacher soft labels
    "temperature": Words("Label temperature", "The teacher's soft labels are its softmax at this temperature: "
                         "higher spreads them across classes."),
    "teacher_width": Words("Teacher width (channels)", "Channels of the ConvNet teacher that scores crops and "
                           "gives soft labels: wider is a better teacher but takes longer to train once.",
                           advanced=True),
    "teacher_depth": Words("Teacher depth (blocks)", "Convolution blocks of the teacher ConvNet.", advanced=True),
    "teacher_epochs": Words("Teacher training epochs", "Epochs the teacher trains on the training split (once; it "
                            "is cached): more gives a better teacher.", advanced=True),
    "teacher_lr": Words("Teacher learning rate", "SGD learning rate of the teacher's training.", advanced=True),
    "teacher_augment": Words("Teacher's augmentation", "none: the teacher trains on plain images; dsa: on DSA "
                             "views, as RDED's teachers train augmented (it scored lower on digits and "
                             "Fashion-MNIST here).", choices=TEACHER_AUGMENTS,
                             advanced=True),
    "teacher_max_train": Words("Teacher's training images", "A class-balanced sample of this many training "
                               "images trains the teacher (0: all of them).", advanced=True),
    "mipc": Words("Candidate images per class", "Real images per class whose crops are scored: more candidates "
                  "give more realistic picks but cost more teacher passes."),
    "num_crop": Words("Crops per candidate", "Random crops scored per candidate image (the best one stays).",
                      advanced=True),
    "min_scale": Words("Smallest crop area", "The smallest crop as a fraction of the image area.", advanced=True),
    "max_scale": Words("Largest crop area", "The largest crop as a fraction of the image area.", advanced=True),
    "factor": Words("Crops per side", "Each image stitches factor × factor crops: more, smaller crops per image "
                    "show more variety in the same storage."),
    "net_batch": Words("Network training batch", "Images per training step of the networks the features come "
                       "from.", advanced=True),
}

# (method, field) -> words, where a field means something else in that method
OVERRIDES: dict[tuple[str, str], Words] = {
    ("idm", "factor"): Words("Partitions per side", "Each stored image holds factor × factor smaller images: more "
                             "training images in the same storage, each with less detail."),
    ("kip", "depth"): Words("Kernel depth (hidden layers)", "Hidden ReLU layers of the infinitely wide network "
                            "behind ntk/nngp: deeper captures more abstract similarity but can flatten the kernel."),
    ("kip", "depth_ipc1"): Words("Kernel depth at IPC 1", "Hidden layers of the kernel's network when one image "
                                 "stands for each class (0: the kernel depth above); it replaces that depth at "
                                 "IPC 1 only.", advanced=True),
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
