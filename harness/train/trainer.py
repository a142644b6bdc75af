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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from harness import tfcompat
from harness.errors import ModelError, UsageError
from harness.train import data as data_mod
from harness.train import losses, metrics, nets
from harness.train.config import TrainConfig
from harness.train.model_folder import ModelFolder, load_keras, read_json, save_model, write_json
from harness.train.pipeline import Pipeline
from harness.train.progress import EpochProgress


@dataclass(frozen=True)
class TrainResult:
    folder: Path
    epochs: list[dict[str, Any]]
    best_epoch: int
    best_val_iou: float
    seconds: float


def load_dataset(config: TrainConfig) -> data_mod.Dataset:
    if config.synthetic:
        return data_mod.synthetic_dataset(config.samples, config.input_size, config.seed,
                                          config.channels)  # fmt: skip
    return data_mod.folder_dataset(config.data, config.input_size, config.channels)


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
            raise UsageError(f"nothing to resume in {folder.root} (no checkpoints/{folder.state_json.name})")
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
    }
    if config.synthetic:
        data_info["generator_version"] = data_mod.synthetic.GENERATOR_VERSION
    return {
        "name": config.out_path.name,
        "arch": config.arch,
        "arch_params": {"width": config.width},
        "input": {
            "height": config.input_size, "width": config.input_size, "channels": config.channels,
            "layout": "NHWC", "dtype": "float32", "color": "RGB", "normalization": normalization,
            **({"extra_channels": ["prior_mask"]} if config.channels == 4 else {}),
        },  # fmt: skip
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
        },
        "config": config.to_json(),
    }


class _Steps:
    """The compiled train and eval steps for one run."""

    def __init__(self, config: TrainConfig, built: nets.Nets, optimizer, train_spec, val_spec):
        tf = tfcompat.tf()
        self.config, self.nets, self.optimizer = config, built, optimizer
        self.train = tf.function(self._train, input_signature=[train_spec])
        self.eval = tf.function(self._eval, input_signature=[val_spec])

    def _terms(self, outputs, batch) -> dict[str, Any]:
        cfg = self.config
        logits = outputs[0]
        terms = {"seg_loss": losses.segmentation_loss(cfg.loss, logits, batch["mask"])}
        if cfg.boundary_weight > 0 and "band" in batch:
            if self.nets.arch.boundary_head:
                terms["boundary_loss"] = losses.boundary_loss(outputs[1], batch["band"])
            else:
                terms["boundary_loss"] = losses.band_cross_entropy(logits, batch["mask"],
                                                                   batch["band"])  # fmt: skip
        if cfg.matting_weight > 0 and "alpha" in batch:
            terms["matting_loss"] = losses.matting_loss(logits, batch["alpha"], batch["rgb"])
        total = terms["seg_loss"]
        total += cfg.boundary_weight * terms.get("boundary_loss", 0.0)
        total += cfg.matting_weight * terms.get("matting_loss", 0.0)
        terms["loss"] = total
        return terms

    def _train(self, batch):
        tf = tfcompat.tf()
        model = self.nets.training
        with tf.GradientTape() as tape:
            outputs = model(batch["image"], training=True)
            terms = self._terms(outputs, batch)
        grads = tape.gradient(terms["loss"], model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return terms

    def _eval(self, batch):
        tf = tfcompat.tf()
        logits = self.nets.inference(batch["image"], training=False)
        n = tf.cast(tf.shape(logits)[0], tf.float32)
        loss = losses.segmentation_loss(self.config.loss, logits, batch["mask"]) * n
        return loss, metrics.counts(logits, batch["mask"])


def _evaluate(steps: _Steps, pipeline: Pipeline) -> tuple[float, metrics.Counts]:
    total_loss, seen, counts = 0.0, 0, metrics.Counts()
    for batch in pipeline.epoch(0, shuffle=False):
        loss, c = steps.eval(batch)
        c = c.numpy()
        total_loss += float(loss)
        seen += int(batch["mask"].shape[0])
        counts = counts + metrics.Counts(*map(float, c))
    return total_loss / max(seen, 1), counts


def _restore(folder: ModelFolder, state: dict[str, Any], checkpoint, model, optimizer) -> None:
    prefix = folder.checkpoints / str(state.get("checkpoint", ""))
    if not Path(str(prefix) + ".index").is_file():
        raise ModelError(f"cannot resume: checkpoint {prefix} is missing")
    optimizer.build(model.trainable_variables)
    try:
        checkpoint.read(str(prefix)).assert_existing_objects_matched()
    except (AssertionError, ValueError) as exc:
        raise ModelError(f"cannot resume from {prefix}: {exc}") from exc


def run(
    config: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    console: Console | None = None,
) -> TrainResult:
    """Train ``config`` (validated here) into its model folder; see the module docstring."""
    config = config.validated()
    folder = ModelFolder(config.out_path)
    state = _prepare_folder(folder, resume, overwrite)
    info = read_json(folder.train_json) if resume else None
    tf = tfcompat.tf()
    keras = tfcompat.keras()
    keras.utils.set_random_seed(config.seed)
    dataset = load_dataset(config)
    train_ds, val_ds = data_mod.split(dataset, config.val_ratio, config.seed)
    if state is not None and state.get("fingerprint") != dataset.fingerprint:
        raise UsageError(f"cannot resume {folder.root}: the data changed (fingerprint differs)")
    has_alpha = dataset.alphas is not None and config.matting_weight > 0
    built = nets.build(config.arch, config.input_size, config.channels, config.width)
    if config.weights and state is None:
        load_weights(built.inference, config.weights, config)
    normalization = data_mod.normalization_for(config.channels)
    train_pipe = Pipeline(train_ds, config.batch_size, normalization, config.seed, config.augment,
                          losses.thicknesses_for(config.input_size) if config.boundary_weight else (),
                          use_alpha=has_alpha)  # fmt: skip
    val_pipe = Pipeline(val_ds, config.batch_size, normalization)
    total_steps = config.epochs * train_pipe.steps
    schedule = keras.optimizers.schedules.CosineDecay(config.lr, max(1, total_steps), alpha=0.02)
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    checkpoint = tf.train.Checkpoint(model=built.training, optimizer=optimizer)
    if state is not None:
        _restore(folder, state, checkpoint, built.training, optimizer)
    steps = _Steps(config, built, optimizer, train_pipe.epoch(1).element_spec,
                   val_pipe.epoch(0, shuffle=False).element_spec)  # fmt: skip
    export = nets.fixed_batch(built.inference)

    info = info or _describe(config, dataset, train_ds, val_ds,
                             nets.count_params(built.inference), has_alpha)  # fmt: skip
    info["training"]["epochs"] = config.epochs
    info["config"] = config.to_json()
    info["status"] = "running"
    history: list[dict[str, Any]] = list(info.get("epochs", []))
    best = dict(info.get("best") or {"epoch": 0, "val_iou": -1.0})
    start = int(state["next_epoch"]) if state else 1
    wall = float(info.get("wall_seconds", 0.0))
    writer = tf.summary.create_file_writer(str(folder.logs))
    progress = EpochProgress(console, config.epochs, train_pipe.steps)
    if start > config.epochs:
        progress.note(f"{folder.root} already finished {config.epochs} epochs; nothing to do")
    with progress:
        for epoch in range(start, config.epochs + 1):
            began = time.perf_counter()
            sums: dict[str, float] = {}
            seen = 0
            progress.start_epoch(epoch)
            for batch in train_pipe.epoch(epoch):
                terms = steps.train(batch)
                n = int(batch["mask"].shape[0])
                seen += n
                for key, value in terms.items():
                    sums[key] = sums.get(key, 0.0) + float(value) * n
                progress.advance(sums["loss"] / seen, seen / (time.perf_counter() - began))
            train_seconds = time.perf_counter() - began
            val_loss, counts = _evaluate(steps, val_pipe)
            seconds = time.perf_counter() - began
            wall += seconds
            record = {"epoch": epoch, **{k: round(v / seen, 6) for k, v in sums.items()},
                      "val_loss": round(val_loss, 6), "val_iou": round(counts.iou, 6),
                      "val_acc": round(counts.accuracy, 6),
                      "lr": float(schedule(optimizer.iterations)),
                      "images_per_s": round(seen / train_seconds, 2),
                      "seconds": round(seconds, 2)}  # fmt: skip
            history.append(record)
            improved = counts.iou > best["val_iou"]
            export.set_weights(built.inference.get_weights())
            if improved:
                best = {"epoch": epoch, "val_iou": record["val_iou"]}
                save_model(export, folder.best)
                shutil.copyfile(folder.best, folder.model.with_name(".model.tmp.keras"))
                Path(folder.model.with_name(".model.tmp.keras")).replace(folder.model)
            if epoch % config.checkpoint_every == 0:
                save_model(export, folder.epoch_checkpoint(epoch))
            prefix = f"state/epoch-{epoch:03d}"
            checkpoint.write(str(folder.checkpoints / prefix))
            info.update(epochs=history, best=best, wall_seconds=round(wall, 2),
                        status="complete" if epoch == config.epochs else "running")  # fmt: skip
            write_json(folder.train_json, info)
            write_json(folder.state_json, {
                "next_epoch": epoch + 1, "optimizer_step": int(optimizer.iterations.numpy()),
                "best": best, "checkpoint": prefix, "fingerprint": dataset.fingerprint})  # fmt: skip
            for old in (folder.checkpoints / "state").glob("epoch-*"):
                if not old.name.startswith(f"epoch-{epoch:03d}."):
                    old.unlink(missing_ok=True)
            with writer.as_default(step=epoch):
                for key, value in record.items():
                    if key != "epoch":
                        tf.summary.scalar(key, value)
            writer.flush()
            progress.end_epoch(record, improved)
    info["status"] = "complete"
    write_json(folder.train_json, info)
    return TrainResult(folder.root, history, int(best["epoch"]), float(best["val_iou"]), wall)
