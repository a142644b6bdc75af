"""The training loop: data -> nets -> epochs -> model folder.

Each epoch trains on augmented batches, evaluates on the validation split, logs to
TensorBoard, and writes: ``train.json`` (metrics so far), ``checkpoints/state.json`` plus a
``tf.train.Checkpoint`` of the training model and optimizer (for ``--resume``),
``checkpoints/epoch-NNN.keras`` every ``checkpoint_every`` epochs, and ``checkpoints/best.keras``
and ``model.keras`` whenever val IoU improves. An interrupted run therefore leaves a usable
model folder, and resuming continues from the last finished epoch with the same data order.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from harness import tfcompat
from harness.errors import ModelError, UsageError
from harness.train import data as data_mod
from harness.train import distribute, losses, nets
from harness.train.config import TrainConfig
from harness.train.model_folder import ModelFolder, load_keras, read_json, save_model, write_json
from harness.train.pipeline import Pipeline
from harness.train.progress import EpochProgress
from harness.train.steps import Steps, evaluate, make_optimizer, train_epoch
from harness.ui import console as default_console


@dataclass(frozen=True)
class TrainResult:
    folder: Path
    epochs: list[dict[str, Any]]
    best_epoch: int
    best_val_iou: float
    seconds: float


def load_dataset(config: TrainConfig) -> data_mod.Dataset:
    if config.synthetic:
        return data_mod.synthetic_dataset(
            config.samples, config.input_size, config.seed, config.channels
        )
    return data_mod.folder_dataset(
        config.data, config.input_size, config.channels, config.layout, config.cache
    )


def _weights_file(path: Path) -> Path:
    if path.is_dir():
        return ModelFolder(path).model
    return path


def load_weights(model, path: str | Path, config: TrainConfig) -> None:
    """Copy weights from a saved model into ``model`` by layer name (fine-tuning).

    ``path`` is a ``.keras`` file (model.keras, checkpoints/epoch-NNN.keras, best.keras) or a
    model folder. Every weighted layer must exist on both sides with the same shapes; the input
    size may differ (the nets are fully convolutional).
    """
    file = _weights_file(Path(path))
    if not file.is_file():
        raise UsageError(f"--weights: {path} not found (give a .keras file or a model folder)")
    for info_path in (file.parent / "train.json", file.parent.parent / "train.json"):
        if info_path.is_file():
            stored_arch = read_json(info_path).get("arch")
            if stored_arch and stored_arch != config.arch:
                raise ModelError(
                    f"--weights {path} is a {stored_arch} model; it cannot initialise {config.arch}"
                )
            break
    source = load_keras(file)
    theirs = {layer.name: layer for layer in source.layers if layer.weights}
    ours = {layer.name: layer for layer in model.layers if layer.weights}
    missing = sorted(set(ours) ^ set(theirs))
    if missing:
        raise ModelError(
            f"--weights {path} does not match {config.arch} (width {config.width}, "
            f"{config.channels} channels): layers differ, e.g. {', '.join(missing[:3])}"
        )
    for name, layer in ours.items():
        src = theirs[name].get_weights()
        for w_ours, w_theirs in zip(layer.get_weights(), src, strict=True):
            if w_ours.shape != w_theirs.shape:
                raise ModelError(
                    f"--weights {path} does not match {config.arch} (width {config.width}, "
                    f"{config.channels} channels): layer {name!r} has shape {w_theirs.shape}, "
                    f"expected {w_ours.shape}"
                )
        layer.set_weights(src)


def _prepare_folder(folder: ModelFolder, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """Check the output folder; returns the stored state when resuming."""
    if resume:
        if not folder.state_json.is_file():
            raise UsageError(
                f"nothing to resume in {folder.root} (no checkpoints/{folder.state_json.name})"
            )
        return read_json(folder.state_json)
    existing = [p for p in (folder.train_json, folder.model, folder.checkpoints) if p.exists()]
    if existing and not overwrite:
        raise UsageError(
            f"{folder.root} already holds a trained model; use --resume to continue it, "
            "--overwrite to replace it, or another --out"
        )
    for path in (folder.checkpoints, folder.logs):
        if path.is_dir():
            shutil.rmtree(path)
    for path in (folder.train_json, folder.model):
        path.unlink(missing_ok=True)
    folder.root.mkdir(parents=True, exist_ok=True)
    return None


def _describe(config: TrainConfig, dataset, train_ds, val_ds, params: int, has_alpha: bool):
    normalization = data_mod.normalization_for(config.channels)
    data_info: dict[str, Any] = {
        "source": "synthetic" if config.synthetic else str(Path(config.data).resolve()),
        "seed": config.seed,
        "fingerprint": dataset.fingerprint,
        "val_ratio": config.val_ratio,
        "n_train": len(train_ds),
        "n_val": len(val_ds),
        "mattes": has_alpha,
        "layout": dataset.layout,
    }
    if dataset.split_from is not None:
        data_info["val_split"] = dataset.split_from  # the dataset's own split, not val_ratio
    if config.synthetic:
        data_info["generator_version"] = data_mod.synthetic.GENERATOR_VERSION
    return {
        "name": config.out_path.name,
        "arch": config.arch,
        "arch_params": {"width": config.width},
        "input": {
            "height": config.input_size,
            "width": config.input_size,
            "channels": config.channels,
            "layout": "NHWC",
            "dtype": "float32",
            "color": "RGB",
            "normalization": normalization,
            **({"extra_channels": ["prior_mask"]} if config.channels == 4 else {}),
        },
        "output": {"kind": "logits", "channels": 2, "foreground_channel": 1},
        "data": data_info,
        "params": params,
        "training": {
            "loss": config.loss,
            "boundary_weight": config.boundary_weight,
            "boundary_thicknesses": list(losses.thicknesses_for(config.input_size)),
            "matting_weight": config.matting_weight if has_alpha else 0.0,
            "augment": list(config.augment),
            "batch_size": config.batch_size,
            "lr": config.lr,
            "schedule": "cosine",
            "optimizer": "adam",
            "epochs": config.epochs,
            "fine_tuned_from": config.weights,
            "logit_scale": config.logit_scale,
        },
        "config": config.to_json(),
    }


class _Store:
    """Writes what one finished epoch leaves in the model folder (see the module docstring)."""

    def __init__(self, folder: ModelFolder, config: TrainConfig, parts: _Parts, fingerprint: str):
        self.folder, self.built, self.checkpoint = folder, parts.built, parts.checkpoint
        self.optimizer, self.fingerprint = parts.optimizer, fingerprint
        # [1, H, W, C] in float32, outside any strategy: the saved model is the same whatever
        # the strategy and precision of the run. Built afresh (a clone would copy the training
        # layers' mixed_float16 policy); the weights, float32 in both, are copied each epoch.
        fresh = nets.build(config.arch, config.input_size, config.channels, config.width)
        self.export = nets.fixed_batch(fresh.inference)
        self.logit_scale = config.logit_scale  # --logit-scale: exported models only

    def epoch_done(self, epoch: int, improved: bool, keep: bool, info: dict[str, Any]) -> None:
        folder = self.folder
        self.export.set_weights(self.built.inference.get_weights())
        nets.scale_logits(self.export, self.logit_scale)  # --logit-scale: exported models only
        if improved:
            save_model(self.export, folder.best)
            tmp = folder.model.with_name(".model.tmp.keras")
            shutil.copyfile(folder.best, tmp)
            tmp.replace(folder.model)
        if keep:
            save_model(self.export, folder.epoch_checkpoint(epoch))
        prefix = f"state/epoch-{epoch:03d}"
        self.checkpoint.write(str(folder.checkpoints / prefix))
        write_json(folder.train_json, info)
        state = {
            "next_epoch": epoch + 1,
            "optimizer_step": int(self.optimizer.iterations.numpy()),
            "best": info["best"],
            "checkpoint": prefix,
            "fingerprint": self.fingerprint,
        }
        write_json(folder.state_json, state)  # only now does --resume see the new epoch
        for old in (folder.checkpoints / "state").glob("epoch-*"):
            if not old.name.startswith(f"epoch-{epoch:03d}."):
                old.unlink(missing_ok=True)


def _log_scalars(writer, step: int, record: dict[str, Any]) -> None:
    """TensorBoard scalars, written with TF core only (``tf.summary.scalar`` needs the
    tensorboard package; this writes the same event records without it)."""
    tf = tfcompat.tf()
    meta = tf.compat.v1.SummaryMetadata(
        plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars")
    )
    with writer.as_default(step=step):
        for key, value in record.items():
            if key != "epoch":
                group = "val" if key.startswith("val_") else "train"
                tf.summary.write(
                    f"{group}/{key}", tf.constant(float(value), tf.float32), metadata=meta
                )
    writer.flush()


@dataclass
class _Parts:
    """What one run trains with, built under its strategy and precision."""

    built: nets.Nets
    optimizer: Any
    schedule: Any
    checkpoint: Any
    train_pipe: Pipeline
    val_pipe: Pipeline
    steps: Steps


def _assemble(config: TrainConfig, devices, train_ds, val_ds, has_alpha: bool, state, folder):
    """Pipelines, nets, optimizer, checkpoint (restored when resuming) and compiled steps."""
    tf = tfcompat.tf()
    keras = tfcompat.keras()
    normalization = data_mod.normalization_for(config.channels)
    train_pipe = Pipeline(
        train_ds,
        config.batch_size,
        normalization,
        config.seed,
        config.augment,
        losses.thicknesses_for(config.input_size) if config.boundary_weight else (),
        use_alpha=has_alpha,
        replicas=devices.replicas,
    )
    val_pipe = Pipeline(val_ds, config.batch_size, normalization)
    total_steps = config.epochs * train_pipe.steps
    schedule = keras.optimizers.schedules.CosineDecay(config.lr, max(1, total_steps), alpha=0.02)
    strategy = distribute.make_strategy(devices)
    with distribute.precision(devices.mixed_precision), strategy.scope():
        built = nets.build(config.arch, config.input_size, config.channels, config.width)
        if config.weights and state is None:
            load_weights(built.inference, config.weights, config)
        optimizer = make_optimizer(schedule, devices.mixed_precision)
        checkpoint = tf.train.Checkpoint(model=built.training, optimizer=optimizer)
        if state is not None:
            _restore(folder, state, checkpoint, built.training, optimizer)
    specs = [
        strategy.experimental_distribute_dataset(ds).element_spec
        for ds in (train_pipe.epoch(1), val_pipe.epoch(0, shuffle=False))
    ]
    steps = Steps(config, built, optimizer, strategy, *specs, mixed=devices.mixed_precision)
    return _Parts(built, optimizer, schedule, checkpoint, train_pipe, val_pipe, steps)


def _restore(folder: ModelFolder, state: dict[str, Any], checkpoint, model, optimizer) -> None:
    prefix = folder.checkpoints / str(state.get("checkpoint", ""))
    if not Path(str(prefix) + ".index").is_file():
        raise ModelError(f"cannot resume: checkpoint {prefix} is missing")
    optimizer.build(model.trainable_variables)
    try:
        checkpoint.read(str(prefix)).assert_existing_objects_matched()
    except (AssertionError, ValueError) as exc:
        raise ModelError(f"cannot resume from {prefix}: {exc}") from exc


def _finished(
    console: Console | None, folder: ModelFolder, config: TrainConfig, info
) -> TrainResult:
    (console or default_console()).print(
        f"{folder.root} already finished {config.epochs} epochs; nothing to do"
    )
    best = info.get("best") or {"epoch": 0, "val_iou": 0.0}
    return TrainResult(
        folder.root,
        list(info.get("epochs", [])),
        int(best["epoch"]),
        float(best["val_iou"]),
        float(info.get("wall_seconds", 0.0)),
    )


def _epoch(parts: _Parts, epoch: int, progress: EpochProgress) -> tuple[dict[str, Any], Any]:
    """Train and evaluate one epoch: (its train.json record, the validation counts)."""
    began = time.perf_counter()
    progress.start_epoch(epoch)
    means, seen = train_epoch(parts.steps, parts.train_pipe, epoch, progress)
    train_seconds = time.perf_counter() - began
    val_loss, counts = evaluate(parts.steps, parts.val_pipe)
    record = {
        "epoch": epoch,
        **{k: round(v, 6) for k, v in means.items()},
        "val_loss": round(val_loss, 6),
        "val_iou": round(counts.iou, 6),
        "val_acc": round(counts.accuracy, 6),
        "lr": float(parts.schedule(parts.optimizer.iterations)),
        "images_per_s": round(seen / train_seconds, 2),
        "seconds": round(time.perf_counter() - began, 2),
    }
    return record, counts


def run(
    config: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    console: Console | None = None,
    stop_after: int | None = None,
    devices: distribute.Devices | None = None,
) -> TrainResult:
    """Train ``config`` (validated here) into its model folder; see the module docstring.

    ``stop_after`` ends this invocation after that many epochs, exactly as an interruption
    would (the folder stays resumable): for time-boxed sessions on a shared machine.
    ``devices`` overrides what ``config.strategy`` and ``config.mixed_precision`` resolve to.
    """
    config = config.validated()
    devices = devices or distribute.detect(config.strategy, config.mixed_precision)
    folder = ModelFolder(config.out_path)
    state = _prepare_folder(folder, resume, overwrite)
    info = read_json(folder.train_json) if resume else None
    if state is not None and info is not None and int(state["next_epoch"]) > config.epochs:
        return _finished(console, folder, config, info)
    tf = tfcompat.tf()
    tfcompat.keras().utils.set_random_seed(config.seed)
    dataset = load_dataset(config)
    train_ds, val_ds = data_mod.split(dataset, config.val_ratio, config.seed)
    if state is not None and state.get("fingerprint") != dataset.fingerprint:
        raise UsageError(f"cannot resume {folder.root}: the data changed (fingerprint differs)")
    if devices.replicas > config.batch_size:
        raise UsageError(
            f"--batch-size {config.batch_size} is smaller than the {devices.replicas} replicas "
            "of the strategy (the batch is split across them)"
        )
    if config.matting_weight is None:  # mattes given with a folder dataset: use them
        auto = 1.0 if dataset.alphas is not None and not config.synthetic else 0.0
        config = replace(config, matting_weight=auto)
    has_alpha = dataset.alphas is not None and config.matting_weight > 0
    parts = _assemble(config, devices, train_ds, val_ds, has_alpha, state, folder)
    params = nets.count_params(parts.built.inference)
    info = info or _describe(config, dataset, train_ds, val_ds, params, has_alpha)
    info["training"].update(epochs=config.epochs, devices=devices.describe())
    info["config"] = config.to_json()
    info["status"] = "running"
    history: list[dict[str, Any]] = list(info.get("epochs", []))
    best = dict(info.get("best") or {"epoch": 0, "val_iou": -1.0})
    start = int(state["next_epoch"]) if state else 1
    wall = float(info.get("wall_seconds", 0.0))
    writer = tf.summary.create_file_writer(str(folder.logs))
    store = _Store(folder, config, parts, dataset.fingerprint)
    progress = EpochProgress(console, config.epochs, parts.train_pipe.steps)
    progress.console.print(
        f"training on {devices.replicas} replica(s) ({devices.strategy.value}: "
        f"{', '.join(devices.devices)}), {devices.describe()['precision']}",
        highlight=False,
    )
    last = config.epochs if stop_after is None else min(config.epochs, start + stop_after - 1)
    with progress:
        for epoch in range(start, last + 1):
            record, counts = _epoch(parts, epoch, progress)
            wall += record["seconds"]
            history.append(record)
            improved = counts.iou > best["val_iou"]
            if improved:
                best = {"epoch": epoch, "val_iou": record["val_iou"]}
            status = "complete" if epoch == config.epochs else "running"
            info.update(epochs=history, best=best, wall_seconds=round(wall, 2), status=status)
            store.epoch_done(epoch, improved, epoch % config.checkpoint_every == 0, info)
            _log_scalars(writer, epoch, record)
            progress.end_epoch(record, improved)
    info["status"] = "complete" if last >= config.epochs else "stopped"
    write_json(folder.train_json, info)
    return TrainResult(folder.root, history, int(best["epoch"]), float(best["val_iou"]), wall)
