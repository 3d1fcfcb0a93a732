"""The preset schema: one pydantic model per preset section, and `MiraiConfig` that holds them all.

Every field is typed, bounded where it has bounds, and carries a one-line description (shown by
`mirai presets show` and used in error messages). Cross-field rules live in `MiraiConfig`.
Defaults follow the Mirai and LlamaGen papers (docs/method.md).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# A training duration: an int counts optimizer steps; a string "15ep" counts epochs of the token store
# (converted to steps at train time, when the data set size and global batch are known).
DURATION_PATTERN = re.compile(r"^\d+(\.\d+)?ep$")


def _check_duration(value: Any) -> Union[int, str]:
    if isinstance(value, bool):
        raise ValueError("a duration is a step count (integer) or an epoch count like '15ep'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a duration must be >= 0")
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        if DURATION_PATTERN.match(text):
            return text
    raise ValueError("a duration is a step count (integer) or an epoch count like '15ep'")


def _check_bool_or_auto(value: Any) -> Union[bool, str]:
    if isinstance(value, bool) or value == "auto":
        return value
    raise ValueError("give true, false or 'auto' (on on CUDA, off on the CPU)")


Duration = Annotated[Union[int, str], Field(json_schema_extra={"format": "duration"})]

# Every seed (presets and --seed options, cli/common.py) lies in 0..2^63-1: what torch and numpy generators take.
SEED_MAX = 2**63 - 1
Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]
# Evaluation's seed feeds numpy's RandomState (torch-fidelity's KID subsets and IS shuffle), which takes 32 bits.
EVAL_SEED_MAX = 2**32 - 1

# The names users type live in registries (no torch); imported here so the schema validates against them.
from mirai_cli.config.registries import (  # noqa: E402, F401 - ENCODER_LAYERS, encoder_layer_problem re-exported
    ABLATE_AXES,
    EFFNET_STRIDES,
    ENCODER_LAYERS,
    ENCODER_NAMES,
    EXTRACTOR_NAMES,
    GPT_SIZES,
    VQ_SIZES,
    encoder_layer_problem,
    heads_problem,
    unknown_name,
)


def fill_named_size(section: BaseModel, named: Optional[dict[str, Any]], required: tuple[str, ...]) -> None:
    """A named size (VQ-16, GPT-B, ...) fills the shape fields left unset and rejects ones that contradict it;
    size = 'custom' (named is None) needs every shape field."""
    size = section.size
    if named is None:
        missing = [f for f in required if getattr(section, f) is None]
        if missing:
            raise ValueError(f"size = 'custom' needs {', '.join(missing)}")
        return
    for field, value in named.items():
        current = getattr(section, field)
        if current is None:
            object.__setattr__(section, field, value)  # bypasses validate_assignment: already valid
        elif current != value:
            raise ValueError(
                f"{field} = {current!r} conflicts with size = {size!r} ({value!r}); "
                "set size = 'custom' to choose the shape yourself"
            )


class Section(BaseModel):
    """Base of every preset section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


class DataConfig(Section):
    source: str = Field(
        "fashion-mnist",
        description="images: a built-in data set name (fashion-mnist), a folder of class subfolders, or an .npz",
    )
    split: Literal["train", "test"] = Field("train", description="split of a built-in data set")
    image_size: int = Field(256, ge=8, le=4096, description="side of the square crops fed to the tokenizer (px)")
    crop: Literal["tencrop", "flip", "none"] = Field(
        "tencrop", description="crops per image: LlamaGen's ten-crop of a 1.1x crop, flip-only, or the centre crop"
    )
    crop_ratio: float = Field(1.1, ge=1.0, le=2.0, description="ten-crop: resize to image_size * ratio first")
    max_images: Optional[int] = Field(None, ge=1, description="use only the first N images of the source")
    store: str = Field("runs/tokens", description="folder of the token store written by tokenize, read by train")
    val_images: int = Field(
        0, ge=0, description="held-out images for the validation NLL (0: none); built-in data sets take them from "
        "their test split, other sources hold out an evenly spaced slice that training never sees",
    )
    val_store: Optional[str] = Field(None, description="token store of the held-out images (default: <store>-val)")
    strict: bool = Field(False, description="treat unreadable image files as fatal instead of skipping them")
    num_workers: int = Field(0, ge=0, le=64, description="data loader worker processes")


class TokenizerConfig(Section):
    size: Literal[(*VQ_SIZES, "custom")] = Field(  # type: ignore[valid-type]
        "VQ-16", description="LlamaGen VQ configuration, or custom (then ch, ch_mult, ... apply)"
    )
    ch: Optional[int] = Field(None, ge=8, description="base channels of encoder and decoder")
    ch_mult: Optional[list[Annotated[int, Field(ge=1)]]] = Field(
        None, min_length=1, description="channel multiplier per level; len-1 stride-2 downsamplings"
    )
    z_channels: Optional[int] = Field(None, ge=1, description="channels of the latent before quant_conv")
    codebook_size: Optional[int] = Field(None, ge=2, le=2**31 - 1, description="number of codes")
    codebook_dim: Optional[int] = Field(None, ge=1, description="dimension of each code (L2-normalised)")
    num_res_blocks: int = Field(2, ge=1, description="ResNet blocks per encoder level")
    decoder_num_res_blocks: int = Field(3, ge=1, description="ResNet blocks per decoder level")
    norm_groups: int = Field(32, ge=1, description="GroupNorm groups (LlamaGen: 32; small models need fewer)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout inside the ResNet blocks")
    beta: float = Field(0.25, ge=0.0, description="commitment loss weight")
    checkpoint: Optional[str] = Field(
        None, description="tokenizer checkpoint: ours, or LlamaGen's vq_ds16_c2i.pt (default: <store>/../tokenizer)"
    )
    fit_steps: int = Field(40000, ge=1, description="tokenize fit: optimizer steps")
    fit_batch_size: int = Field(128, ge=1, description="tokenize fit: images per step")
    fit_lr: float = Field(1e-4, gt=0.0, description="tokenize fit: AdamW learning rate")
    perceptual_weight: float = Field(0.0, ge=0.0, description="tokenize fit: LPIPS (VGG16) weight; 0 = off")
    perceptual_weights: Optional[str] = Field(None, description="tokenize fit: local VGG16/LPIPS weights file")
    disc_weight: float = Field(0.0, ge=0.0, description="tokenize fit: PatchGAN hinge loss weight; 0 = off")
    disc_start: int = Field(20000, ge=0, description="tokenize fit: step at which the discriminator starts")
    encode_batch_size: int = Field(64, ge=1, description="tokenize encode: images per batch")
    shard_size: int = Field(4096, ge=1, description="tokenize encode: images per store shard")
    encode_precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="tokenize encode: fp32 as LlamaGen extracts codes; bf16 autocast is faster but flips some codes"
    )
    fit_time_limit: Optional[float] = Field(None, gt=0, description="tokenize fit: stop (with a checkpoint) after this many seconds")

    @model_validator(mode="after")
    def _fill_named_size(self) -> "TokenizerConfig":
        fill_named_size(self, None if self.size == "custom" else VQ_SIZES[self.size],
                        ("ch", "ch_mult", "z_channels", "codebook_size", "codebook_dim"))
        return self

    @property
    def downsample(self) -> int:
        assert self.ch_mult is not None
        return 2 ** (len(self.ch_mult) - 1)


class ModelConfig(Section):
    size: Literal[(*GPT_SIZES, "custom")] = Field(  # type: ignore[valid-type]
        "GPT-B", description="LlamaGen GPT size, or custom (then layers, dim, heads apply)"
    )
    layers: Optional[int] = Field(None, ge=1, le=256, description="transformer blocks")
    dim: Optional[int] = Field(None, ge=8, description="model width")
    heads: Optional[int] = Field(None, ge=1, description="attention heads (dim must be divisible by heads)")
    num_classes: int = Field(1000, ge=1, description="class labels (the null class for CFG is added on top)")
    class_dropout: float = Field(0.1, ge=0.0, lt=1.0, description="probability of replacing the label by null (CFG)")
    token_dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout on the input embeddings")
    resid_dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout on the attention output")
    ffn_dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout on the FFN output")
    attn_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on attention probabilities")
    rope_base: float = Field(10000.0, gt=0.0, description="2D rotary embedding base")
    norm_eps: float = Field(1e-5, gt=0.0, description="RMSNorm epsilon")
    multiple_of: int = Field(256, ge=1, description="SwiGLU hidden size is rounded up to a multiple of this")
    init_std: float = Field(0.02, gt=0.0, description="std of the normal weight init")

    @model_validator(mode="after")
    def _fill_named_size(self) -> "ModelConfig":
        shape = ("layers", "dim", "heads")
        fill_named_size(self, None if self.size == "custom" else dict(zip(shape, GPT_SIZES[self.size])), shape)
        problem = heads_problem(self.dim, self.heads)  # type: ignore[arg-type]
        if problem:
            raise ValueError(problem)
        return self


class ForesightConfig(Section):
    source: Literal["none", "ema", "encoder"] = Field(
        "none", description="teacher: none (plain LlamaGen), ema (Mirai-E), encoder (Mirai-I)"
    )
    level: Literal["internal", "output"] = Field(
        "internal", description="student feature: residual stream after block depth, or the final normed hidden state"
    )
    layout: Literal["2d", "1d"] = Field("2d", description="head offsets on the 2D token grid or in raster order")
    k: int = Field(3, ge=1, le=64, description="number of foresight heads (offsets)")
    offsets: Optional[list[list[int]]] = Field(
        None, description="explicit offsets, [row, col] pairs (2d) or [d] (1d); overrides layout + k"
    )
    border: Literal["drop", "wrap"] = Field(
        "drop", description="targets outside the grid: drop the pair, or wrap to the next row (public code)"
    )
    align_class: bool = Field(
        True, description="Mirai-E: every head also aligns the class position 0 with the teacher's position 0 "
        "(the paper's code); no effect with an encoder teacher"
    )
    depth: Optional[int] = Field(None, ge=1, description="block whose output is the student feature (1-indexed; default 2/3 of layers)")
    projector_dim: int = Field(2048, ge=1, description="hidden width of each projector MLP")
    lambda_: Union[float, list[float]] = Field(
        2.0, alias="lambda", description="loss weight per head (one number for all heads, or one per head)"
    )
    lambda_schedule: Literal["constant", "step", "cosine"] = Field(
        "constant", description="lambda over training: constant, multiplied by lambda_factor at lambda_at, cosine to lambda*factor"
    )
    lambda_at: Duration = Field(0, description="step schedule: when lambda is multiplied by lambda_factor (steps or 'Nep')")
    lambda_factor: float = Field(0.5, ge=0.0, description="step/cosine schedule: final lambda = lambda * factor")
    warmup: Duration = Field(0, description="the foresight loss is off for this long (steps or 'Nep')")
    ema_decay: float = Field(0.9999, ge=0.0, lt=1.0, description="Mirai-E: EMA decay of the teacher")
    encoder: str = Field("dinov2-vit-b", description=f"Mirai-I: frozen encoder, one of {', '.join(ENCODER_NAMES)}")
    encoder_weights: Optional[str] = Field(None, description="Mirai-I: local weights file for the encoder (offline)")
    encoder_resolution: Optional[int] = Field(None, ge=16, description="Mirai-I: encoder input size (default: the encoder's, 224)")
    encoder_layer: Optional[int] = Field(
        None, ge=0, description="Mirai-I: where the target is read: EfficientNet stage stride 4/8/16/32 (input "
        "stride x grid unless encoder_resolution is set), DINOv2 block 1..depth; unset or 0: the last"
    )
    target_norm: Literal["none", "layer", "spatial"] = Field(
        "none", description="target normalisation: none, layer (per position over channels) or spatial (iREPA: "
        "per image and channel over the positions)"
    )
    target_norm_alpha: float = Field(
        0.6, ge=0.0, le=1.0, description="spatial target norm: fraction of the spatial mean subtracted (iREPA's 0.6)"
    )
    encoder_resize: Literal["bicubic", "bicubic-antialias"] = Field(
        "bicubic", description="Mirai-I: encoder input resize: normalise then plain bicubic (the paper's code), or "
        "bicubic antialiased when shrinking and clamped, then normalised"
    )
    teacher_precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="precision of the foresight targets (EMA teacher, encoders): fp32 as the paper's code, "
        "or bf16 autocast (faster on GPUs)"
    )
    cache_teacher: bool = Field(
        False, description="Mirai-I: compute encoder features once next to the token store (small data sets; "
        "ImageNet with ten crops would need terabytes) instead of running the encoder every step"
    )

    @field_validator("lambda_at", "warmup", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Union[int, str]:
        return _check_duration(value)

    @field_validator("encoder_layer")
    @classmethod
    def _zero_is_the_default_layer(cls, value: Optional[int]) -> Optional[int]:
        return value or None  # 0 lets --set (which cannot unset a key) go back to the encoder's last layer

    @field_validator("encoder")
    @classmethod
    def _known_encoder(cls, value: str) -> str:
        if value not in ENCODER_NAMES:
            raise ValueError(unknown_name("encoder", value, ENCODER_NAMES))
        return value

    @field_validator("lambda_")
    @classmethod
    def _non_negative_lambda(cls, value: Union[float, list[float]]) -> Union[float, list[float]]:
        values = value if isinstance(value, list) else [value]
        if any(v < 0 for v in values):
            raise ValueError("lambda must be >= 0")
        return value

    @model_validator(mode="after")
    def _check_offsets(self) -> "ForesightConfig":
        if self.offsets is not None:
            want = 2 if self.layout == "2d" else 1
            for offset in self.offsets:
                if len(offset) != want:
                    raise ValueError(
                        f"offsets: layout {self.layout} takes {'[row, col] pairs' if want == 2 else '[d] items'}, got {offset}"
                    )
                if any(v < 0 for v in offset):
                    raise ValueError(f"offsets must look ahead (>= 0), got {offset}")
            if len(self.offsets) != self.k:
                object.__setattr__(self, "k", len(self.offsets))
        elif self.layout == "2d" and self.k > 9:
            raise ValueError("layout 2d has 9 default offsets; give k <= 9 or explicit offsets")
        if isinstance(self.lambda_, list) and len(self.lambda_) != self.k:
            raise ValueError(f"lambda has {len(self.lambda_)} values for k = {self.k} heads")
        # A teacher's settings are checked where the teacher is used (a baseline may keep another scale's).
        problem = encoder_layer_problem(self.encoder, self.encoder_layer) if self.source == "encoder" else None
        if problem:
            raise ValueError(problem)
        return self


class TrainConfig(Section):
    duration: Duration = Field("300ep", description="training length: steps, or epochs of the token store like '300ep'")
    global_batch_size: int = Field(256, ge=1, description="sequences per optimizer step, over all processes")
    micro_batch_size: Optional[int] = Field(
        None, ge=1, description="sequences per process per forward (default: global / processes); accumulation fills the rest"
    )
    lr: float = Field(1e-4, gt=0.0, description="AdamW learning rate (LlamaGen: 1e-4 at global batch 256)")
    betas: list[float] = Field([0.9, 0.95], min_length=2, max_length=2, description="AdamW betas")
    weight_decay: float = Field(0.05, ge=0.0, description="AdamW weight decay, only on tensors with >= 2 dims")
    grad_clip: float = Field(1.0, ge=0.0, description="max global grad norm; 0 = off")
    lr_warmup: Duration = Field(0, description="linear lr warm-up (steps or 'Nep')")
    lr_schedule: Literal["constant", "cosine", "linear"] = Field("constant", description="lr after warm-up")
    lr_min_ratio: float = Field(0.0, ge=0.0, le=1.0, description="cosine/linear decay: final lr = lr * ratio")
    precision: Literal["bf16", "fp32"] = Field("bf16", description="autocast precision (bf16 on CPU with AMX and on CUDA)")
    compile: Union[bool, Literal["auto"]] = Field(
        "auto", description="torch.compile the model: true, false, or auto (on on CUDA, off on the CPU where "
        "compiling rarely pays; the Mirai-E teacher's forward is compiled with it)"
    )
    tf32: bool = Field(
        True, description="CUDA: fp32 matmuls and convolutions (fp32 foresight targets, fp32 training) in TF32, as "
        "LlamaGen's training sets it; false = full fp32 (~8x slower on tensor-core GPUs)"
    )
    tensorboard: bool = Field(False, description="also log every metric to <run>/tensorboard (pip install 'mirai-cli[tensorboard]')")
    parallel: Literal["ddp", "fsdp"] = Field(
        "ddp", description="multi-process strategy under torchrun: ddp (a full copy per process) or fsdp (FSDP2: "
        "weights, gradients and optimizer state sharded, for GPT-XXL and up)"
    )
    activation_checkpointing: bool = Field(
        False, description="recompute each block's activations in backward (less memory, ~1/3 more compute)"
    )
    seed: Seed = Field(0, description="seed of weights, data order and dropout")
    log_every: int = Field(10, ge=1, description="steps between metric lines")
    ckpt_every: Duration = Field(5000, description="steps (or 'Nep') between checkpoints")
    keep_last: int = Field(2, ge=1, description="checkpoints kept (older ones are deleted)")
    ema_decay: float = Field(0.9999, ge=0.0, lt=1.0, description="decay of the EMA weights used for sampling (0 = off)")
    eval_every: Optional[Duration] = Field(None, description="ablate: steps (or 'Nep') between sample+eval rounds")
    run_dir: str = Field("runs/{name}", description="output folder; {name} is the preset name")

    @field_validator("duration", "lr_warmup", "ckpt_every", "eval_every", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Union[int, str, None]:
        return None if value is None else _check_duration(value)

    @field_validator("compile", mode="before")
    @classmethod
    def _bool_or_auto(cls, value: Any) -> Union[bool, str]:
        return _check_bool_or_auto(value)

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, value: list[float]) -> list[float]:
        if not all(0.0 <= b < 1.0 for b in value):
            raise ValueError("betas must be in [0, 1)")
        return value


class SampleConfig(Section):
    cfg_scale: float = Field(2.0, ge=0.0, description="classifier-free guidance scale (1 = no guidance)")
    cfg_schedule: Literal["constant", "linear", "interval"] = Field(
        "constant", description="guidance over the sequence: constant, linear ramp from 1, or stop after cfg_interval"
    )
    cfg_interval: float = Field(1.0, ge=0.0, le=1.0, description="interval schedule: fraction of tokens that get guidance")
    temperature: float = Field(1.0, gt=0.0, description="softmax temperature")
    top_k: int = Field(0, ge=0, description="keep the k most likely tokens; 0 = off")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling mass; 1 = off")
    classes: Optional[list[Annotated[int, Field(ge=0)]]] = Field(None, description="explicit class list (overrides per_class)")
    per_class: int = Field(50, ge=1, description="images per class over all classes (class-balanced)")
    random_classes: Optional[int] = Field(None, ge=1, description="instead: this many images with uniformly random classes")
    batch_size: Union[int, Literal["auto"]] = Field(
        "auto", description="images per generation batch; auto: 128 on CUDA, 32 on the CPU"
    )
    shard_size: int = Field(1000, ge=1, description="images per resumable shard")
    seed: Seed = Field(0, description="sampling seed")
    weights: Literal["ema", "raw"] = Field("ema", description="EMA weights (default) or the raw trained weights")
    compile: Union[bool, Literal["auto"]] = Field(
        "auto", description="torch.compile the decode step: true, false, or auto (on on CUDA, off on the CPU)"
    )
    precision: Literal["bf16", "fp32"] = Field("bf16", description="autocast precision on CUDA (CPU samples in fp32)")
    weights_dtype: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="dtype the GPT's weights are held in while sampling; auto: the precision the decoding "
        "computes in (bf16 on CUDA under precision bf16, fp32 otherwise, whose tokens stay exact); bf16 weights "
        "are faster but change ~10% of the tokens of fp32 weights under bf16 autocast"
    )


    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_or_auto(cls, value: Any) -> Union[int, str]:
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        raise ValueError("give a number of images >= 1, or 'auto' (128 on CUDA, 32 on the CPU)")

    @field_validator("compile", mode="before")
    @classmethod
    def _bool_or_auto(cls, value: Any) -> Union[bool, str]:
        return _check_bool_or_auto(value)


class EvalConfig(Section):
    metrics: list[Literal["fid", "isc", "kid", "prc"]] = Field(
        ["fid", "isc", "kid", "prc"], min_length=1, description="metrics to compute"
    )
    extractor: str = Field("inception-v3-compat", description=f"feature extractor, one of {', '.join(EXTRACTOR_NAMES)}")
    reference: Optional[str] = Field(None, description="reference images/stats (default: the data source's train split)")
    inception_weights: Optional[str] = Field(None, description="local Inception weights file (offline)")
    kid_subset_size: int = Field(1000, ge=2, description="KID subset size")
    isc_splits: int = Field(10, ge=1, description="Inception Score splits")
    prc_neighborhood: int = Field(3, ge=1, description="precision/recall k-NN size")
    batch_size: int = Field(64, ge=1, description="images per feature-extraction batch")
    ref_limit: Optional[int] = Field(None, ge=2, description="use a fixed random subset of this many reference images")
    kid_subsets: int = Field(100, ge=1, description="KID subsets")
    resize: Optional[int] = Field(
        None, ge=8, description="resize samples and reference to this size (ADM centre crop) when they differ"
    )

    @field_validator("extractor")
    @classmethod
    def _known_extractor(cls, value: str) -> str:
        if value not in EXTRACTOR_NAMES:
            raise ValueError(unknown_name("extractor", value, EXTRACTOR_NAMES))
        return value


class AblateConfig(Section):
    axis: Optional[Literal[tuple(ABLATE_AXES)]] = Field(  # type: ignore[valid-type]
        None, description=f"the axis to vary, one of {', '.join(ABLATE_AXES)}"
    )
    values: Optional[list[Union[int, float, str]]] = Field(None, description="axis values (default: the axis's own)")
    seeds: list[Seed] = Field([0], min_length=1, description="seeds, each once; each variant runs once per seed")
    baseline_seeds: int = Field(
        1, ge=1, description="baseline runs per seed set: N > 1 adds N - 1 baseline runs on the seeds after the "
        "largest of ablate.seeds (max + 1, max + 2, ...) to measure noise"
    )
    eval_samples_per_class: int = Field(
        10, ge=0, description="class-balanced samples per evaluation round (0: no sampling, validation NLL only)"
    )
    out_dir: str = Field("runs/ablate-{axis}", description="study folder; {axis} is the axis name")

    @field_validator("seeds")
    @classmethod
    def _seeds_once(cls, value: list[int]) -> list[int]:
        # Each seed names a run folder (<variant>-s<seed>): a repeated seed would count one run twice.
        repeated = sorted({s for s in value if value.count(s) > 1})
        if repeated:
            raise ValueError(f"seed {repeated[0]} is given twice; give each seed once, e.g. [0, 1, 2]")
        return value


class MiraiConfig(BaseModel):
    """A whole preset: metadata plus one section per command."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False, populate_by_name=True)

    name: str = Field("custom", description="preset name (used in run folder names)")
    description: str = Field("", description="one line shown by `mirai presets list`")
    data: DataConfig = Field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    foresight: ForesightConfig = Field(default_factory=ForesightConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    ablate: AblateConfig = Field(default_factory=AblateConfig)

    @model_validator(mode="after")
    def _cross_section_rules(self) -> "MiraiConfig":
        downsample = self.tokenizer.downsample
        if self.data.image_size % downsample:
            raise ValueError(
                f"data.image_size = {self.data.image_size} is not divisible by the tokenizer's downsampling "
                f"{downsample} (len(tokenizer.ch_mult) - 1 halvings); the token grid must be whole"
            )
        layers = self.model.layers
        assert layers is not None
        if self.foresight.depth is None:
            # docs/method.md, "Foresight": 8 of 12 for GPT-B, 16 of 24 for L, 24 of 36 for XL: two thirds, at least 1.
            object.__setattr__(self.foresight, "depth", max(1, round(2 * layers / 3)))
        elif self.foresight.depth > layers:
            raise ValueError(f"foresight.depth = {self.foresight.depth} exceeds model.layers = {layers}")
        grid = self.grid
        for offset in self.foresight.offsets or []:
            if (len(offset) == 2 and max(offset) >= grid) or (len(offset) == 1 and offset[0] >= grid * grid):
                raise ValueError(f"foresight.offsets {offset} reaches outside the {grid}x{grid} token grid")
        fc = self.foresight
        problem = (encoder_layer_problem(fc.encoder, fc.encoder_layer, grid, fc.encoder_resolution)
                   if fc.source == "encoder" else None)
        if problem:
            raise ValueError(problem)
        if self.sample.classes is not None:
            bad = [c for c in self.sample.classes if c >= self.model.num_classes]
            if bad:
                raise ValueError(
                    f"sample.classes {bad} outside the model's {self.model.num_classes} classes (0..{self.model.num_classes - 1})"
                )
        return self

    @property
    def grid(self) -> int:
        """Side of the square token grid."""
        return self.data.image_size // self.tokenizer.downsample

    @property
    def vocab_size(self) -> int:
        assert self.tokenizer.codebook_size is not None
        return self.tokenizer.codebook_size


SECTIONS: dict[str, type[Section]] = {
    "data": DataConfig,
    "tokenizer": TokenizerConfig,
    "model": ModelConfig,
    "foresight": ForesightConfig,
    "train": TrainConfig,
    "sample": SampleConfig,
    "eval": EvalConfig,
    "ablate": AblateConfig,
}


def section_defaults(section: str) -> dict[str, Any]:
    """Every field's default in one preset section, by field name. Job configs (GPTConfig, SampleOptions,
    VQConfig, FitConfig, TargetOptions, EvalSettings) and CLI options take their defaults from here, so a
    default is written once (tests/config/test_one_default.py checks it)."""
    return {name: f.get_default(call_default_factory=True) for name, f in SECTIONS[section].model_fields.items()}


def setting_help(key: str) -> str:
    """The help of a CLI option that sets `section.field` for one call: the schema's description and default."""
    section, name = key.split(".")
    field = SECTIONS[section].model_fields[name]
    default = field.get_default(call_default_factory=True)
    return f"{field.description} (default: the preset's {key}, {'unset' if default is None else default})"
