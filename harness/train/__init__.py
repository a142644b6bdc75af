"""Training: datasets, augmentations, architectures, losses and the training loop.

The entry points other packages use (docs/model-folder.md):

- :func:`harness.train.data.synthetic_portraits`, :func:`harness.train.data.load_folder`,
  :func:`harness.train.data.normalize`
- :func:`harness.train.model_folder.load`

Importing this package (or ``harness.train.commands``) never imports TensorFlow.
"""
