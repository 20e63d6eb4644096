"""Each distiller's settings per dataset family, as data: the `fast` profile (CPU-sized) and `paper` (published).

`TABLE` below is the one source of every per-dataset default of kip, dm, dc, dsa and mtt: `Config.for_dataset`
builds configs from it, `default_steps` reads its `iterations`, and the settings table in the README is generated
from it (`python -m distill_core.profiles` prints it; a test keeps them equal).

- `fast` is what runs without `--profile`: a ConvNet-3 narrower than the paper's, fewer and lighter iterations,
  short expert trajectories — sized so that `distill --ipc 1|10 --eval quick` finishes in minutes on a 2-core CPU.
- `paper` is each method's published recipe, taken from the papers and the authors' code (the source column says
  where). Where a paper gives no setting for a family (MTT published no MNIST recipe; nobody distils 8×8 digits)
  the nearest published one is used and the source says so. `paper` iterations take hours on a CPU: use a GPU.

Dataset families: **small** = `digits` (8×8); **grey28** = `mnist-5k`, `mnist`, `fashion-mnist`, `kmnist`;
**colour32** = `cifar10`, `cifar100`, `svhn` and image folders.

A value is one number for every family, a `Fam` (one per family) or a `ByIPC` (by images per class: the row of
the nearest IPC at or above, the last row beyond). Iterations count image updates (`step()`s), except for dc and
dsa, where they count fresh networks, each matched `outer_loop` times: their default steps are iterations ×
`outer_loop`.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .errors import InvalidInputError

PROFILES = ("fast", "paper")
FAMILIES = ("small", "grey28", "colour32")
GROUPS = {"digits": "small", "mnist-5k": "grey28", "mnist": "grey28", "fashion-mnist": "grey28",
          "kmnist": "grey28", "cifar10": "colour32", "cifar100": "colour32", "svhn": "colour32"}
DISTILLERS = ("kip", "dm", "dc", "dsa", "mtt", "rfad", "frepo", "idm", "tesla", "datm", "rded")


def dataset_family(dataset_name: str) -> str:
    """small / grey28 / colour32 (image folders and unknown names count as colour32)."""
    return GROUPS.get(dataset_name, "colour32")


def check_profile(profile: str) -> str:
    """The profile name, or one clear error naming the choices."""
    if profile not in PROFILES:
        raise InvalidInputError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return profile


@dataclass(frozen=True)
class ByIPC:
    """A value by images per class: `rows` = ((ipc, value), ...) ascending; the nearest IPC at or above wins.

    `at_start`: the config holds 0 ("by IPC") and the method picks the value when it starts, so a config made
    without an IPC (the app's settings form) still follows the IPC it runs at.
    """

    rows: tuple[tuple[int, Any], ...]
    at_start: bool = False

    def at(self, ipc: int) -> Any:
        for limit, value in self.rows:
            if ipc <= limit:
                return value
        return self.rows[-1][1]

    def __str__(self) -> str:
        return ", ".join(f"{_fmt(v)} @{i}" for i, v in self.rows)


@dataclass(frozen=True)
class Fam:
    """One value per dataset family."""

    small: Any
    grey28: Any
    colour32: Any

    def of(self, family: str) -> Any:
        return getattr(self, family)


@dataclass(frozen=True)
class Row:
    """One setting of one or more methods in both profiles, and where the paper value comes from."""

    methods: tuple[str, ...]
    setting: str
    fast: Any
    paper: Any
    source: str = ""

    def value(self, profile: str) -> Any:
        return self.fast if profile == "fast" else self.paper


DC_PAPER = "DC/DSA code (VICO-UoE/DatasetCondensation main.py)"
DM_PAPER = "DM code (main_DM.py) and README"
MTT_PAPER = "MTT code (buffer.py, distill.py) and paper's CIFAR-10 recipe; no MNIST recipe was published"
KIP_PAPER = "KIP authors' colab (google-research/kip)"
MTT_IPC1_NOTE = ("chosen on the validation split (fashion-mnist, quick protocol, three ConvNets per seed, seeds 0-2): "
                 "65.9 % (63.2, 66.9, 67.4) against herding's 63.2 %, 59.8 % from herding's picks with start epochs "
                 "up to 4 (67.4, 62.5, 49.6) and 61.9 % from random real images (seeds 0-1, one ConvNet each)")
# the trajectory family's fast start at IPC 1 on 28×28 greyscale sets (mtt, tesla, datm; chosen on validation, see
# their notes): herding's picks, matching expert segments that start in the first 2 epochs
HERDING_START_AT_IPC1 = Fam("real", ByIPC(((1, "herding"), (50, "real"))), "real")
EARLY_STARTS_AT_IPC1 = Fam(4, ByIPC(((1, 2), (50, 4))), 10)
KIP_VAL_NOTE = "fashion-mnist, quick protocol, one ConvNet per seed; seeds 0-2 where three, else 0-1"
FREPO_IPC1_NOTE = ("chosen on the validation split (fashion-mnist, quick protocol, one ConvNet per seed, seeds 0-2): "
                   "66.4 % with learned labels, image rate 0.3 and 1,000 steps, against 59.5 % for hard labels, 0.03 and "
                   "300 steps; 65.7 % the same at rate 0.1; learned labels and 1,000 steps at 0.03, 62.5 %; hard labels: "
                   "1,000 steps at 0.03, 60.7 %, at 0.01, 57.3 %, 300 steps at 0.1, 61.5 %; learned labels at 0.03 and 300 "
                   "steps, 61.7 %)")
FREPO_IPC10_NOTE = ("chosen on the validation split at IPC 10 (fashion-mnist, quick protocol, three ConvNets per "
                    "seed): 79.5 % (79.9, 78.9, 79.8; seeds 0-2) with learned labels, image rate 0.1 and width 128, "
                    "against 75.2 % for hard labels, 0.01 and width 32 (seed 0; 0.1: 75.8 %, 0.3: 72.6 %; width 64 at "
                    "0.1: 76.6 %; width 128 at 0.1 with hard labels: 78.3 %) and KIP's 79.4 %")
FREPO_BATCH_NOTE = ("chosen on the validation split at IPC 10 (fashion-mnist, quick protocol, three ConvNets per "
                    "seed, the profile's other settings): 79.8 % (80.4, 79.4, 79.7; seeds 0-2) against 79.5 % at 256; "
                    "1,024 (the paper's) 80.3 % on seed 0 at 1.6x the time")
FREPO_STEPS_NOTE = ("chosen on the validation split at IPC 10 (fashion-mnist, quick protocol, three ConvNets per "
                    "seed, the profile's other settings, the pool channels-last): 81.1 % (81.5, 80.9, 80.8; seeds "
                    "0-2) against 79.8 % at 200; 250 steps with a target batch of 1,024 80.8 % on seed 0 in about the "
                    "same time; about 9 CPU-minutes per distillation")
RDED_PAPER = "RDED code (LINs-lab/RDED: argument.py, scripts/cifar10_10ipc_conv3_to_conv3_cr5.sh, synthesize/)"
RDED_TEACHER = ("RDED's conv3 teacher: ConvNet-3, 128 channels, BatchNorm (synthesize/utils.py); RDED ships it "
                "pretrained without a recipe: epochs are this project's choice")
RFAD_PAPER = "RFAD code (yolky/RFAD run_distillation.py, distillation.py)"
RFAD_LABELS_NOTE = ("chosen on the validation split (fashion-mnist, quick protocol, three ConvNets per seed, seeds "
                    "0-2): at IPC 1 68.4 % (66.3, 71.3, 67.7) against 64.8 % (64.8, 66.3, 63.2) with hard labels; at "
                    "IPC 10 and 200 steps 82.8 % (82.5, 83.2, 82.6) against 80.1 % (seed 0); KIP's learned labels "
                    "scored below its hard ones (59.9 % at IPC 1, 73.7 % at IPC 10)")
RFAD_IPC10_NOTE = ("chosen on the validation split with learned labels (fashion-mnist, quick protocol, three "
                   "ConvNets per seed): 600 steps 84.3 % (84.3, 84.6, 83.9; seeds 0-2) against 82.8 % at 200; hard "
                   "labels with 600 steps 80.5 % (seed 0); about 4.5 wall-minutes per distillation with two jobs on "
                   "the two cores")
FREPO_PAPER = "FRePo code (yongchao97/FRePo script/distill.py and its PyTorch version)"
SMALL_NOTE = "; 8×8 digits: 2 blocks (a 3rd normalises 2×2 maps and the images diverge)"
BY_SIZE_NOTE = ("; 0 = by image size (`models.default_depth`: 2 up to 16 px, 3 at 32 px, 4 at 64 px as DM/MTT "
                "use on Tiny-ImageNet)")
GM_LOOPS = ((1, 1), (10, 10), (20, 20), (30, 30), (40, 40), (50, 50))

IDM_PAPER = "IDM code (uitrbn/IDM IDM_cifar10.py, command.txt)"
IDM_IPC10_NOTE = ("chosen on the validation split at IPC 10 (fashion-mnist, quick protocol, one ConvNet per seed, "
                  "seeds 0-2): 79.5 % at 1.0 against 77.6 % at 0.2 (seeds 0-1: 78.5, 76.8), in 200 steps")
TESLA_PAPER = "TESLA code (justincui03/tesla distill.py); its CIFAR recipes are MTT's"
DATM_PAPER = "DATM code (NUS-HPC-AI-Lab/DATM configs/CIFAR-10/ConvIN)"
DATM_IPC1_NOTE = ("chosen on the validation split at IPC 1 (fashion-mnist, quick protocol, three ConvNets per "
                  "seed, seeds 0-2): 65.8 % from herding's picks against 63.3 % from correctly classified random ones")
TESLA_IPC1_NOTE = ("chosen on the validation split at IPC 1 (fashion-mnist, quick protocol, three ConvNets per "
                   "seed, seeds 0-2): 67.0 % (65.5, 68.7, 66.8) from herding's picks with start epochs up to 2 "
                   "(MTT's IPC 1 profile), against MTT's 65.9 % with the same start")
DATM_WINDOW_NOTE = "fast: an early window at IPC 1, widening at 10, later at 50 (experts of 6 epochs)"

T_ROWS: tuple[Row, ...] = (
    # ------------------------------------------------------------------------------------------------------ idm
    Row(("idm",), "iterations", ByIPC(((10, 200), (50, 150))), 20000, IDM_PAPER + ": Iteration 20000"),
    Row(("idm",), "width", Fam(64, 32, 128), 128, IDM_PAPER + ": ConvNet-3, 128 channels"),
    Row(("idm",), "lr", Fam(0.2, ByIPC(((1, 0.2), (50, 1.0))), 0.2), 0.2,
        IDM_PAPER + ": lr_img 0.2, SGD momentum 0.5; fast grey28 above IPC 1: 1.0 (DM's), " + IDM_IPC10_NOTE),
    Row(("idm",), "batch_real", Fam(64, 64, 128), ByIPC(((1, 5000), (50, 256))),
        IDM_PAPER + ": batch_real 5000 at IPC 1, 256 otherwise (per class)"),
    Row(("idm",), "factor", Fam(1, 2, 2), Fam(1, 2, 2),
        IDM_PAPER + ": --aug, 2×2 partitions (8×8 digits: none, a 4×4 part holds no digit)"),
    Row(("idm",), "num_nets", Fam(10, 10, 20), 100, IDM_PAPER + ": net_num 100"),
    Row(("idm",), "net_interval", ByIPC(((1, 5), (50, 10))), ByIPC(((1, 5), (50, 30))),
        IDM_PAPER + ": net_generate_interval 5 at IPC 1, 30 otherwise"),
    Row(("idm",), "train_nets", 1, 2, IDM_PAPER + ": fetch_net_num 2 (networks trained per iteration)"),
    Row(("idm",), "net_train_steps", 2, 10, IDM_PAPER + ": model_train_steps 10"),
    Row(("idm",), "net_batch", 64, 256, IDM_PAPER + ": trained_bs 256"),
    Row(("idm",), "lr_net", 0.01, 0.01, IDM_PAPER + ": lr_net 0.01, momentum 0.9, weight decay 5e-4"),
    Row(("idm",), "ce_weight", ByIPC(((10, 0.5), (50, 0.1))), ByIPC(((10, 0.5), (50, 0.1))),
        IDM_PAPER + ": ce_weight 0.5 at IPC 1/10, 0.1 at 50 (CIFAR-10)"),
    Row(("idm",), "init", "real", "real", IDM_PAPER),
    Row(("idm",), "dsa", True, True, IDM_PAPER + ": DSA on both sets"),
    # ------------------------------------------------------------------------------------------- tesla, datm
    Row(("tesla",), "iterations", 200, 5000, TESLA_PAPER + ": MTT's Iteration 5000"),
    Row(("datm",), "iterations", 200, 10000, DATM_PAPER + ": Iteration 10000"),
    Row(("tesla", "datm"), "width", Fam(64, 32, 128), 128, "ConvNet-3, 128 channels (both papers)"),
    Row(("tesla", "datm"), "depth", Fam(2, 3, 3), Fam(2, 3, 3), "ConvNet-3" + SMALL_NOTE),
    Row(("tesla",), "lr", 100.0, 1000.0, TESLA_PAPER + ": lr_img 1000"),
    Row(("datm",), "lr", 100.0, ByIPC(((10, 100.0), (50, 1000.0))), DATM_PAPER + ": lr_img 100 at IPC 1/10, 1000 at 50"),
    Row(("tesla", "datm"), "lr_teacher", Fam(0.05, 0.05, 0.01), 0.01, "experts' lr and the student's start (both)"),
    Row(("tesla", "datm"), "lr_lr", 0.01, 0.01,
        "Adam on the log learning rate here (as mtt); the papers' SGD on the rate (1e-7 to 1e-5) does not transfer"),
    Row(("tesla",), "syn_steps", Fam(20, 20, 30), ByIPC(((1, 50), (10, 30), (50, 30))), TESLA_PAPER),
    Row(("datm",), "syn_steps", Fam(20, 20, 30), 80, DATM_PAPER + ": syn_steps 80"),
    Row(("tesla", "datm"), "expert_epochs", 2, 2, "expert_epochs 2 (both)"),
    Row(("tesla",), "max_start_epoch", EARLY_STARTS_AT_IPC1, ByIPC(((1, 2), (10, 20), (50, 40))),
        TESLA_PAPER + "; fast grey28 at IPC 1: 2, as the paper's IPC 1 (with herding's picks, see init)"),
    Row(("tesla",), "batch_syn", Fam(20, 20, 0), ByIPC(((1, 0), (10, 100), (50, 100))),
        TESLA_PAPER + ": mini-batches where the set is large"),
    Row(("datm",), "batch_syn", Fam(20, 20, 0), ByIPC(((1, 0), (10, 100), (50, 500))),
        DATM_PAPER + ": batch_syn 1000 (all) at IPC 1, 100 at 10, 500 at 50"),
    Row(("tesla", "datm"), "num_experts", Fam(2, 2, 5), 100, "100 experts (both, as MTT)"),
    Row(("tesla", "datm"), "expert_train_epochs", Fam(6, 6, 15), 50, "50 epochs each (both, as MTT)"),
    Row(("tesla", "datm"), "dsa", True, True, "DSA in the experts and the student (both)"),
    Row(("tesla", "datm"), "soft_labels", True, True, "learned soft labels from the experts' logits"),
    Row(("tesla",), "lr_label", 2.0, 2.0, "TESLA does not learn its labels; DATM's lr_y 2 is used"),
    Row(("datm",), "lr_label", ByIPC(((1, 5.0), (50, 2.0))), ByIPC(((1, 5.0), (50, 2.0))),
        DATM_PAPER + ": lr_y 5 at IPC 1, 2 at 10/50"),
    Row(("tesla", "datm"), "momentum_label", 0.9, 0.9, DATM_PAPER + ": Momentum_y 0.9"),
    Row(("tesla", "datm"), "exact", True, True, "the exact gradient (= MTT's); False: TESLA's first-order one"),
    Row(("datm",), "min_start_epoch", ByIPC(((10, 0), (50, 1))), 0, DATM_PAPER + ": min_start_epoch 0 up to IPC 50"
        "; " + DATM_WINDOW_NOTE),
    Row(("datm",), "current_max_start_epoch", ByIPC(((1, 0), (10, 2), (50, 3))), ByIPC(((1, 0), (10, 10), (50, 20))),
        DATM_PAPER + ": 10 at IPC 10, 20 at 50; IPC 1 has no growing window"),
    Row(("datm",), "max_start_epoch", Fam(ByIPC(((1, 2), (10, 4), (50, 5))), ByIPC(((1, 2), (10, 4), (50, 5))),
                                          ByIPC(((1, 4), (10, 10), (50, 13)))),
        ByIPC(((1, 4), (10, 20), (50, 40))), DATM_PAPER + ": 4 at IPC 1, 20 at 10, 40 at 50"),
    Row(("datm",), "expansion_end", ByIPC(((1, 0), (10, 100), (50, 100))), ByIPC(((1, 0), (10, 1000), (50, 2000))),
        DATM_PAPER + ": expansion_end_epoch (iterations) 1000 at IPC 10, 2000 at 50"),
    Row(("datm",), "threshold", ByIPC(((1, 1.1), (50, 1.0))), ByIPC(((1, 1.1), (50, 1.0))),
        DATM_PAPER + ": threshold 1.1 at IPC 1, 1.0 at 10/50"),
    Row(("datm",), "init", HERDING_START_AT_IPC1, "real",
        DATM_PAPER + ": samples_predicted_correctly; fast grey28 at IPC 1: herding's picks, " + DATM_IPC1_NOTE),
    Row(("datm",), "init_correct", True, True, DATM_PAPER + ": samples_predicted_correctly"),
    Row(("tesla",), "init", HERDING_START_AT_IPC1, "real",
        TESLA_PAPER + ": pix_init real; fast grey28 at IPC 1: herding's picks, " + TESLA_IPC1_NOTE),
)

TABLE: tuple[Row, ...] = (
    # ------------------------------------------------------------------------------------------------------ kip
    Row(("kip",), "iterations", 1000, 1000, KIP_PAPER + ": ~1000 steps for convergence"),
    Row(("kip",), "kernel", "ntk", "ntk", KIP_PAPER),
    Row(("kip",), "depth", Fam(3, 1, 3), 1,
        KIP_PAPER + ": FC1 (hidden ReLU layers of the kernel's network); fast grey28: 1, chosen on the validation "
        "split (quick protocol, seeds 0-2 or 0-4, ConvNets trained on the images): fashion-mnist IPC 1 64.5 % (five "
        "seeds, three ConvNets each) against 62.7 % at depth 3 and herding's 63.2 %, IPC 10 79.4 % against 78.9 %; "
        "mnist-5k IPC 10 93.3 % against 92.7 %, IPC 1 75.8 % against 77.5 % (its validation split is 400 images); "
        "the image rate 0.3 stays at depth 1 (fashion-mnist IPC 1, seeds 0-2: 64.3 % at 0.3, 60.6 % at 0.1, 64.3 % "
        "at 1)"),
    Row(("kip",), "depth_ipc1", Fam(0, 6, 0), 0,
        "0: `depth`; fast grey28: 6 hidden layers at IPC 1, chosen on the validation split (quick protocol, seeds "
        "0-4, three ConvNets each): fashion-mnist 65.3 % against 64.5 % at depth 1 (4: 62.9 %, 8: 64.7 %, 12: "
        "64.3 %; herding 63.2 %), mnist-5k 80.2 % against 75.0 % (herding 77.4 %); at IPC 10 depth 6 scored 78.2 % "
        "against 79.2 % (fashion-mnist, seeds 0-2), so `depth` stays 1 above IPC 1"),
    Row(("kip",), "w_var", 2.0, 2.0, KIP_PAPER + ": W_std √2"),
    Row(("kip",), "b_var", 0.01, 0.01, KIP_PAPER + ": b_std 0.1"),
    Row(("kip",), "ridge", 1e-6, 1e-6, KIP_PAPER + ": 1e-6 · tr(K)/n"),
    Row(("kip",), "lr", Fam(0.01, 0.3, 0.01), 0.04,
        KIP_PAPER + ": Adam 0.04; fast grey28: 0.3, chosen on the validation split (" + KIP_VAL_NOTE + "; IPC 10: "
        "three seeds 78.8 % vs herding 73.8 %; two: 74.2 % at 0.01, 74.6 % at 0.03, 76.9 % at 0.1, 76.6 % at 1; "
        "mnist-5k 93.3 % at 0.3 and at 0.01; IPC 50 not measured)"),
    Row(("kip",), "lr_ipc1", Fam(0.1, 0.3, 0.1), 0.04,
        "fast: one image per class moves further; grey28 0.3, chosen on the validation split (" + KIP_VAL_NOTE +
        "; IPC 1: three seeds 66.3 % vs herding 63.8 %, 62.2 % at 0.1, 62.0 % at 0.2; two: 57.4 % at 0.03, "
        "64.7 % at 0.5, 65.8 % at 1; mnist-5k 76.4 % vs 70.0 % at 0.1); paper: one rate for all IPCs"),
    Row(("kip",), "target_batch", Fam(500, 1000, 1000), 5000, KIP_PAPER),
    Row(("kip",), "learn_labels", False, False, KIP_PAPER),
    Row(("kip",), "init", "real", "real", KIP_PAPER + ": a class-balanced real sample"),
    # ------------------------------------------------------------------------------------------------------- dm
    Row(("dm",), "iterations", ByIPC(((10, 300), (50, 200))), 20000, DM_PAPER + ": Iteration 20000"),
    Row(("dm",), "width", Fam(64, 32, 128), 128, DM_PAPER + ": ConvNet-3, 128 channels"),
    Row(("dm",), "lr", 1.0, 1.0, DM_PAPER + ": lr_img 1 at IPC 1/10/50"),
    Row(("dm",), "batch_real", Fam(64, 64, 128), 256, DM_PAPER + ": batch_real 256 per class"),
    Row(("dm",), "init", "real", "real", DM_PAPER),
    Row(("dm",), "dsa", True, True, DM_PAPER + ": DSA on both sets"),
    # -------------------------------------------------------------------------------------------------- dc, dsa
    Row(("dc", "dsa"), "iterations", ByIPC(((1, 200), (50, 10))), 1000,
        DC_PAPER + ": Iteration 1000 (fresh networks)"),
    Row(("dc", "dsa"), "width", Fam(64, 32, 128), 128, DC_PAPER + ": ConvNet-3, 128 channels"),
    Row(("dc", "dsa"), "depth", Fam(2, 3, 0), Fam(2, 3, 0), DC_PAPER + SMALL_NOTE + BY_SIZE_NOTE),
    Row(("dc", "dsa"), "lr", 0.1, 0.1, DC_PAPER + ": lr_img 0.1, SGD momentum 0.5"),
    Row(("dc", "dsa"), "image_lr_factor",
        ByIPC(((1, 1.0), (50, 5.0)), at_start=True), 1.0, "fast: larger image steps for a short CPU budget"),
    Row(("dc", "dsa"), "batch_real", Fam(32, 32, 128), 256, DC_PAPER + ": batch_real 256 per class"),
    Row(("dc", "dsa"), "outer_loop", ByIPC(GM_LOOPS, at_start=True), ByIPC(GM_LOOPS, at_start=True),
        DC_PAPER + ": get_loops"),
    Row(("dc", "dsa"), "inner_loop", ByIPC(((1, 1), (10, 10), (20, 10), (30, 10), (40, 10), (50, 10)), at_start=True),
        ByIPC(((1, 1), (10, 50), (20, 25), (30, 20), (40, 15), (50, 10)), at_start=True), DC_PAPER + ": get_loops"),
    Row(("dc", "dsa"), "lr_net", 0.01, 0.01, DC_PAPER + ": lr_net 0.01"),
    Row(("dc", "dsa"), "batch_train", 256, 256, DC_PAPER + ": batch_train 256"),
    Row(("dc",), "init", "real", "noise", DC_PAPER + ": init noise by default"),
    Row(("dsa",), "init", "real", "real", DC_PAPER + ": DSA runs with --init real"),
    # ------------------------------------------------------------------------------------------------------ mtt
    Row(("mtt",), "iterations", 200, 5000, MTT_PAPER + ": Iteration 5000"),
    Row(("mtt",), "width", Fam(64, 32, 128), 128, MTT_PAPER + ": ConvNet-3, 128 channels"),
    Row(("mtt",), "depth", Fam(2, 3, 0), Fam(2, 3, 0), MTT_PAPER + SMALL_NOTE + BY_SIZE_NOTE),
    Row(("mtt",), "lr", 100.0, 1000.0, MTT_PAPER + ": lr_img 1000 (default; CIFAR-10 at IPC 50 without ZCA)"),
    Row(("mtt",), "lr_teacher", Fam(0.05, 0.05, 0.01), 0.01, MTT_PAPER + ": experts' lr and the student's start"),
    Row(("mtt",), "lr_lr", 0.01, 0.01,
        "Adam on the log learning rate here; the paper's SGD on the rate itself (1e-7 to 1e-5) does not transfer"),
    Row(("mtt",), "syn_steps", Fam(20, 20, 30), ByIPC(((1, 50), (10, 30), (50, 30))), MTT_PAPER),
    Row(("mtt",), "expert_epochs", 2, 2, MTT_PAPER),
    Row(("mtt",), "max_start_epoch", EARLY_STARTS_AT_IPC1, ByIPC(((1, 2), (10, 20), (50, 40))),
        MTT_PAPER + "; fast grey28 at IPC 1: 2, as the paper's IPC 1 (with herding's picks, see init)"),
    Row(("mtt",), "init", HERDING_START_AT_IPC1, "real",
        MTT_PAPER + ": pix_init real; fast grey28 at IPC 1: herding's picks with start epochs up to 2, " + MTT_IPC1_NOTE),
    Row(("mtt",), "batch_syn", Fam(20, 20, 0), 0, MTT_PAPER + ": the whole synthetic set per student step"),
    Row(("mtt",), "num_experts", Fam(2, 2, 5), 100, MTT_PAPER + ": 100 experts"),
    Row(("mtt",), "expert_train_epochs", Fam(6, 6, 15), 50, MTT_PAPER + ": 50 epochs each"),
    Row(("mtt",), "dsa", True, True, MTT_PAPER + ": DSA in the experts and the student"),
    # ---------------------------------------------------------------------------------------- idm, tesla, datm
    *T_ROWS,
    # ----------------------------------------------------------------------------------- rded (+ random-soft)
    Row(("rded",), "iterations", 1, 1, RDED_PAPER + ": one pass of selection, stitching and relabelling"),
    Row(("rded",), "factor", 1, 1,
        RDED_PAPER + ": factor 1 on CIFAR (2 is its ImageNet default); fast too — on fashion-mnist IPC 1 (validation "
        "split, 2 seeds) a 2×2 mosaic's teacher label names its class for 2–3 of 10 images and scores 11–13 %, "
        "whole crops score 61–66 %"),
    Row(("rded",), "mipc", 100, 300, RDED_PAPER + ": mipc 300 candidate images per class"),
    Row(("rded",), "num_crop", 5, 5, RDED_PAPER + ": num_crop 5"),
    Row(("rded",), "min_scale", 0.08, 0.08, RDED_PAPER + ": RandomResizedCrop scale (0.08, 1)"),
    Row(("rded",), "max_scale", 1.0, 1.0, RDED_PAPER + ": RandomResizedCrop scale (0.08, 1)"),
    Row(("rded", "random-soft"), "temperature", 1.0, 1.0,
        "RDED relabels each batch at T 20 (CutMix) with the student at the same T; a fixed label learned by a "
        "student at T 1 takes T 1 (digits, validation split, seeds 0-2 × 3 networks, IPC 1 / 10: T 4 scored RDED "
        "82.3 / 91.7 % against 79.2 / 90.4 %, random-soft 75.4 / 92.5 % against 75.2 / 94.1 %, inside the spread)"),
    Row(("rded", "random-soft"), "teacher_width", Fam(32, 32, 64), 128, RDED_TEACHER),
    Row(("rded", "random-soft"), "teacher_depth", Fam(2, 3, 3), Fam(2, 3, 3),
        RDED_TEACHER + "; 8×8 digits: 2 blocks"),
    Row(("rded", "random-soft"), "teacher_epochs", Fam(30, 3, 5), 50, RDED_TEACHER),
    Row(("rded", "random-soft"), "teacher_lr", 0.01, 0.01, RDED_TEACHER + "; SGD 0.01 as the field's ConvNets"),
    Row(("rded", "random-soft"), "teacher_augment", "none", "none",
        "plain images: a teacher trained on DSA views scored RDED lower on the validation split under fixed, "
        "relabelled and CutMix evaluation on digits (IPC 1 and 10) and relabelled on fashion-mnist (IPC 10; README, "
        "Evaluation protocols)"),
    Row(("rded", "random-soft"), "teacher_max_train", Fam(0, 10000, 10000), 0,
        "fast: a class-balanced sample of 10,000 training images; paper: the whole training split"),
    # ----------------------------------------------------------------------------------------------------- rfad
    Row(("rfad",), "iterations", Fam(ByIPC(((1, 300), (10, 200), (50, 100))), ByIPC(((1, 300), (10, 600), (50, 100))),
                                      ByIPC(((1, 300), (10, 200), (50, 100)))), 100000,
        RFAD_PAPER + ": at most 100,000 steps, stopped early on a validation loss; fast grey28 IPC 10: 600, "
        + RFAD_IPC10_NOTE),
    Row(("rfad",), "width", Fam(64, 32, 32), 256, RFAD_PAPER + ": ConvNet_wide, 128 channels × k = 2"),
    Row(("rfad",), "depth", 3, 3, RFAD_PAPER + ": 3 blocks, no normalisation"),
    Row(("rfad",), "num_models", 2, 8, RFAD_PAPER + ": 8 random networks per step, resampled every step"),
    Row(("rfad",), "target_batch", Fam(500, 256, 256), 5120, RFAD_PAPER + ": n_batches 4 × 1,280 real images"),
    Row(("rfad",), "ridge", 5e-3, 5e-3, RFAD_PAPER + ": jit 5e-3 · tr(K)/n"),
    Row(("rfad",), "lr", ByIPC(((1, 0.03), (50, 0.01))), 0.001,
        RFAD_PAPER + ": lr 1e-3 (AdaBelief; Adam here); fast: a short run moves further"),
    Row(("rfad",), "loss", "platt", "platt", RFAD_PAPER + ": --platt, log-temperature at lr 1e-2"),
    Row(("rfad",), "learn_labels", Fam(False, ByIPC(((10, True), (50, False))), False), True,
        RFAD_PAPER + ": README example --platt --learn_labels; fast: hard labels, except grey28 IPC 1 and 10: learned "
        "(networks fit them with MSE), " + RFAD_LABELS_NOTE),
    Row(("rfad",), "label_lr", 0.01, 0.001, RFAD_PAPER + ": labels in the images' parameter group"),
    Row(("rfad",), "init", "real", "real", RFAD_PAPER + ": init_strategy random (real images)"),
    # ---------------------------------------------------------------------------------------------------- frepo
    Row(("frepo",), "iterations", Fam(ByIPC(((1, 300), (10, 200), (50, 100))), ByIPC(((1, 1000), (10, 400), (50, 100))),
                                       ByIPC(((1, 300), (10, 200), (50, 100)))), 500000,
        FREPO_PAPER + ": num_train_steps 500K in the CIFAR scripts; fast grey28 IPC 1: 1000, " + FREPO_IPC1_NOTE
        + "; IPC 10: 400, " + FREPO_STEPS_NOTE),
    Row(("frepo",), "width", Fam(64, ByIPC(((1, 32), (10, 128), (50, 32))), 32), 128,
        FREPO_PAPER + ": ConvNet-3 width 128, no normalisation; fast grey28 IPC 10: 128, " + FREPO_IPC10_NOTE),
    Row(("frepo",), "depth", 3, 3, FREPO_PAPER),
    Row(("frepo",), "pool_size", 3, 10, FREPO_PAPER + ": num_nn_state 10"),
    Row(("frepo",), "max_age", 30, 100, FREPO_PAPER + ": max_online_updates 100"),
    Row(("frepo",), "net_lr", 0.001, 0.0003,
        FREPO_PAPER + ": online Adam 3e-4; fast: short-lived networks learn faster"),
    Row(("frepo",), "net_batch", 500, 500, FREPO_PAPER + ": online batch 500"),
    Row(("frepo",), "target_batch", Fam(500, ByIPC(((1, 256), (10, 512), (50, 256))), 256), 1024,
        FREPO_PAPER + ": batch_size 1024; fast grey28 IPC 10: 512, " + FREPO_BATCH_NOTE),
    Row(("frepo",), "ridge", 1e-6, 1e-6, FREPO_PAPER + ": reg 1e-6 · tr/n"),
    Row(("frepo",), "lr", Fam(ByIPC(((1, 0.03), (50, 0.01))), ByIPC(((1, 0.3), (10, 0.1), (50, 0.01))),
                             ByIPC(((1, 0.03), (50, 0.01)))), 0.001,
        FREPO_PAPER + ": Adam 1e-3 (PyTorch version; LAMB 3e-4 in JAX), cosine to 0.1×; fast: fewer steps; "
        "grey28 IPC 1: 0.3, chosen with the iterations row's search; IPC 10: 0.1, chosen with the width row's"),
    Row(("frepo",), "label_lr", 0.01, 0.001, FREPO_PAPER + ": labels in the images' optimiser"),
    Row(("frepo",), "learn_labels", Fam(False, ByIPC(((10, True), (50, False))), False), True,
        FREPO_PAPER + ": learn_label True; fast: hard labels (networks fit learned ones with MSE, which needs more "
        "epochs than the quick protocol's), except grey28 IPC 1 and 10: learned, chosen with the "
        "iterations row's search (IPC 1) and the width row's (IPC 10)"),
    Row(("frepo",), "flip", Fam(False, False, True), Fam(False, False, True),
        FREPO_PAPER + ": use_flip except on (Fashion-)MNIST"),
    Row(("frepo",), "init", "real", "real", FREPO_PAPER + ": real images of each class"),
    Row(("frepo",), "channels_last", True, False,
        "memory layout, not a setting of the method: the same arithmetic in another order; fast: the pool's "
        "ConvNets run channels-last, 1.4-1.9x faster per step on this project's CPU (`python -m "
        "benchmarks.frepo_layout`); paper: the contiguous layout (not timed on a GPU)"),
)


def _rows(method: str) -> list[Row]:
    return [r for r in TABLE if method in r.methods]


def _resolve(value: Any, family: str, ipc: int | None) -> tuple[bool, Any]:
    """(known, value) of a table cell for a family and an IPC; unknown when it is by IPC and no IPC is given."""
    if isinstance(value, Fam):
        value = value.of(family)
    if isinstance(value, ByIPC):
        if ipc is None:
            return (True, 0) if value.at_start else (True, value.at(1))
        return True, value.at(ipc)
    return True, value


def settings(method: str, dataset_name: str, profile: str = "fast", ipc: int | None = None) -> dict[str, Any]:
    """The table's settings of `method` for a dataset (without `iterations`).

    Without an IPC, a by-IPC setting the method picks when it starts is 0 ("by IPC"); any other by-IPC setting
    takes its IPC-1 value (pass `ipc` to get the right one).
    """
    check_profile(profile)
    family = dataset_family(dataset_name)
    out: dict[str, Any] = {}
    for row in _rows(method):
        if row.setting == "iterations":
            continue
        out[row.setting] = _resolve(row.value(profile), family, ipc)[1]
    return out


def by_ipc(method: str, setting: str, dataset_name: str, profile: str, ipc: int) -> Any:
    """One setting of the table at an IPC (how a method fills a setting left at 0 = "by IPC")."""
    check_profile(profile)
    for row in _rows(method):
        if row.setting == setting:
            return _resolve(row.value(profile), dataset_family(dataset_name), ipc)[1]
    raise KeyError(f"{method} has no {setting!r} in the profiles table")


def iterations(method: str, dataset_name: str, profile: str, ipc: int) -> int | None:
    """The profile's iterations for a method at an IPC (None for methods without a row, e.g. selectors)."""
    check_profile(profile)
    for row in _rows(method):
        if row.setting == "iterations":
            return int(_resolve(row.value(profile), dataset_family(dataset_name), ipc)[1])
    return None


def config_kwargs(config_cls: type, method: str, dataset_name: str, profile: str = "fast",
                  ipc: int | None = None) -> dict[str, Any]:
    """Keyword arguments for `config_cls` from the table (only its own fields), with the profile recorded."""
    known = {f.name for f in fields(config_cls)}
    values = {k: v for k, v in settings(method, dataset_name, profile, ipc).items() if k in known}
    if "profile" in known:
        values["profile"] = profile
    return values


# ---------------------------------------------------------------------------------------------- the table

def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _cell(value: Any, family: str) -> str:
    if isinstance(value, Fam):
        value = value.of(family)
    if isinstance(value, ByIPC):
        return str(value)
    return _fmt(value)


def markdown_table() -> str:
    """The whole table as markdown: one line per method and setting, fast and paper values per family.

    By-IPC values read `value @ipc` (the row of the nearest IPC at or above; the last beyond).
    """
    lines = ["| method | setting | fast: small | grey28 | colour32 | paper: small | grey28 | colour32 | paper source |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in TABLE:
        cells = [_cell(row.fast, f) for f in FAMILIES] + [_cell(row.paper, f) for f in FAMILIES]
        lines.append(f"| {', '.join(row.methods)} | `{row.setting}` | " + " | ".join(cells) + f" | {row.source} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
