"""Federated training on Flower: FedAvg, FedNTD and FedLMD on label-skewed Fruits-360.

``python -m fruitseg.federated run ...`` runs Flower's simulation engine (a ``ServerApp`` and a
``ClientApp``, :mod:`fruitseg.federated.apps`); the same two apps run as a real deployment
with a SuperLink and SuperNodes (the Flower App is ``fruitseg/federated/flower_app``; the
commands are in ``checkpoints/federated/README.md``).

Modules:

* :mod:`~fruitseg.federated.data`: the Fruits-360 frames downscaled and cached (train and the
  project's held-out validation frame blocks), or tiny synthetic data for tests;
* :mod:`~fruitseg.federated.partitions`: Dirichlet label skew and class shards, deterministic;
* :mod:`~fruitseg.federated.model`: the small CNN;
* :mod:`~fruitseg.federated.algorithms`: the local losses and the local training loop;
* :mod:`~fruitseg.federated.apps`: Flower's ServerApp / ClientApp and the strategy (needs ``flwr``);
* :mod:`~fruitseg.federated.report`: the results JSON -> table and plot (no ``flwr``: the app
  reads it).

Only :mod:`~fruitseg.federated.apps` and the CLI import ``flwr``; the Gradio app never does.
"""
