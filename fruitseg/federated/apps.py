"""Flower's ServerApp and ClientApp for the FedAvg / FedNTD / FedLMD comparison.

The same two apps run in Flower's simulation engine (``python -m fruitseg.federated run``, which
calls ``flwr.simulation.run_simulation``) and in a real deployment (a SuperLink, one SuperNode
per client started with ``--node-config "partition-id=K num-partitions=N"``, and ``flwr run``:
see ``checkpoints/federated/README.md``).

* The server sends every node a ``query`` message first to learn which data partition it holds,
  then runs :class:`PartitionSampledFedAvg`, Flower's message-based ``FedAvg`` strategy with one
  change: the clients of each round are drawn from a generator seeded by (seed, round), so the
  same seed trains the same clients in every algorithm (Flower's own sampling is unseeded).
  After every round the global model is evaluated centrally on the held-out validation frames
  (``evaluate_fn``), and a tqdm bar shows it.
* A client reads its partition (:mod:`fruitseg.federated.partitions` of the cached data,
  :mod:`fruitseg.federated.data`), trains the received global model with the round's algorithm
  (:mod:`fruitseg.federated.algorithms`) and replies with the weights, its sample count, its
  mean loss and its *minority accuracy*: the accuracy of its trained local model on the
  validation frames of the classes that are not major for it (the knowledge FedNTD and FedLMD
  try to keep from being forgotten).

Every setting travels in the train message's ConfigRecord, so clients need no configuration of
their own beyond their partition id. The algorithm and all hyperparameters are in
:class:`RunSettings`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from tqdm import tqdm

from fruitseg.federated import data as fdata
from fruitseg.federated.algorithms import ALGORITHMS, LocalConfig, accuracy, train_local
from fruitseg.federated.model import SmallFruitsCNN
from fruitseg.federated.partitions import partition
from fruitseg.losses import major_labels_from_counts

INFERENCE_PATH = "float32, eager (training and evaluation on CPU)"  # what every run computes with


@dataclass(frozen=True)
class RunSettings:
    """One federated run. Flower config keys are the field names with ``-`` for ``_``."""

    algorithm: str = "fedavg"
    seed: int = 0
    partition: str = "dirichlet"  # or "shards"
    alpha: float = 0.1  # Dirichlet concentration (partition "dirichlet")
    classes_per_client: int = 2  # partition "shards"
    clients: int = 10
    fraction: float = 0.5  # of the clients, per round
    rounds: int = 30
    local_epochs: int = 2
    batch_size: int = 50
    lr: float = 0.01
    lr_decay: float = 0.99  # per round, as in the FedLMD / FedNTD code
    momentum: float = 0.9
    weight_decay: float = 1e-5
    tau: float = 1.0
    beta: float = 1.0
    width: int = 16  # channels of the first block; then 2x and 4x
    threads: int = 1  # torch threads per client
    data: str = fdata.SYNTHETIC
    size: int = 32
    classes: int = 0
    per_class: int = 0
    val_per_class: int = 0
    cache_dir: str = str(fdata.DEFAULT_CACHE)

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {self.algorithm!r}; expected one of {ALGORITHMS}")

    def to_config(self) -> dict[str, Any]:
        return {f.name.replace("_", "-"): getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "RunSettings":
        """From a Flower run config or ConfigRecord (unknown keys ignored, missing ones default)."""
        values = {}
        for f in dataclasses.fields(cls):
            key = f.name.replace("_", "-")
            if key in config:
                values[f.name] = type(f.default)(config[key])
        return cls(**values)

    def label(self) -> str:
        skew = f"alpha {self.alpha:g}" if self.partition == "dirichlet" else f"{self.classes_per_client} classes/client"
        return f"{self.algorithm} {skew} seed {self.seed}"

    def data_spec(self) -> fdata.DataSpec:
        return fdata.DataSpec(self.data, self.size, self.classes, self.per_class, self.val_per_class, self.cache_dir)

    def local_config(self, server_round: int) -> LocalConfig:
        return LocalConfig(
            self.local_epochs, self.batch_size, self.lr * self.lr_decay ** (server_round - 1),
            self.momentum, self.weight_decay, self.tau, self.beta,
        )  # fmt: skip

    def build_model(self, num_classes: int) -> SmallFruitsCNN:
        return SmallFruitsCNN(num_classes, self.size, (self.width, 2 * self.width, 4 * self.width))


# --------------------------------------------------------------------------- data per client


@lru_cache(maxsize=8)
def _tensors(spec: fdata.DataSpec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    d = fdata.load(spec)
    return (
        fdata.to_tensor(d.x_train), torch.from_numpy(d.y_train),
        fdata.to_tensor(d.x_val), torch.from_numpy(d.y_val), d.num_classes,
    )  # fmt: skip


@lru_cache(maxsize=64)
def _partitions(spec: fdata.DataSpec, scheme: str, clients: int, seed: int, alpha: float, per_client: int) -> list[np.ndarray]:
    return partition(_tensors(spec)[1].numpy(), clients, scheme, seed, alpha=alpha, classes_per_client=per_client)


def client_partitions(settings: RunSettings) -> list[np.ndarray]:
    """The index arrays of every client's training samples under ``settings``."""
    s = settings
    return _partitions(s.data_spec(), s.partition, s.clients, s.seed, s.alpha, s.classes_per_client)


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def client_round(settings: RunSettings, partition_id: int, server_round: int, state_dict: dict) -> tuple[dict, dict]:
    """What a client does with the round's global weights: (new weights, metrics)."""
    torch.set_num_threads(settings.threads)
    x, y, x_val, y_val, num_classes = _tensors(settings.data_spec())
    idx = torch.from_numpy(client_partitions(settings)[partition_id])
    x, y = x[idx], y[idx]
    model = settings.build_model(num_classes)
    model.load_state_dict(state_dict)
    loss = train_local(
        model, x, y, num_classes, settings.algorithm, settings.local_config(server_round),
        seed=_seed(settings.seed, server_round, partition_id),
    )  # fmt: skip
    majors = major_labels_from_counts(np.bincount(y.numpy(), minlength=num_classes))
    minority = ~torch.isin(y_val, majors)
    metrics = {"num-examples": len(y), "train-loss": loss, "minority-accuracy": accuracy(model, x_val, y_val, minority)}
    return model.state_dict(), metrics


# --------------------------------------------------------------------------- the ClientApp


def _partition_id(context: Context, settings: RunSettings) -> int:
    """This node's partition, checked against the run's number of clients."""
    partition_id = int(context.node_config["partition-id"])
    total = int(context.node_config.get("num-partitions", settings.clients))
    if total != settings.clients or not 0 <= partition_id < total:
        raise ValueError(f"node holds partition {partition_id} of {total}, but the run has {settings.clients} clients")
    return partition_id


client_app = ClientApp()


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    config = msg.content["config"]
    settings = RunSettings.from_config(config)
    partition_id = _partition_id(context, settings)
    weights, metrics = client_round(settings, partition_id, int(config["server-round"]), msg.content["arrays"].to_torch_state_dict())
    content = RecordDict({"arrays": ArrayRecord(weights), "metrics": MetricRecord(metrics)})
    return Message(content=content, reply_to=msg)


@client_app.query()
def query(msg: Message, context: Context) -> Message:
    """Which partition this node holds (the server's sampling is by partition id)."""
    content = RecordDict({"metrics": MetricRecord({"partition-id": int(context.node_config["partition-id"])})})
    return Message(content=content, reply_to=msg)


# --------------------------------------------------------------------------- the ServerApp


class PartitionSampledFedAvg(FedAvg):
    """FedAvg whose round-r clients are drawn by partition id from ``default_rng([seed, r])``."""

    def __init__(self, node_of_partition: Mapping[int, int], seed: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.node_of_partition = dict(node_of_partition)
        self.seed = seed

    def sampled_partitions(self, server_round: int) -> list[int]:
        total = len(self.node_of_partition)
        count = min(total, max(int(total * self.fraction_train), self.min_train_nodes))
        return sorted(int(p) for p in np.random.default_rng([self.seed, server_round]).choice(total, count, replace=False))

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        config["server-round"] = server_round
        record = RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: config})
        nodes = [self.node_of_partition[p] for p in self.sampled_partitions(server_round)]
        return self._construct_messages(record, nodes, MessageType.TRAIN)


def _partition_map(grid: Grid, clients: int, timeout: float = 600.0) -> dict[int, int]:
    """Wait for ``clients`` nodes, ask each for its partition id: {partition id: node id}."""
    deadline = time.monotonic() + timeout
    while len(nodes := list(grid.get_node_ids())) < clients:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(nodes)} of {clients} nodes connected")
        time.sleep(1)
    messages = [Message(RecordDict(), dst_node_id=node, message_type=MessageType.QUERY) for node in nodes]
    mapping = {}
    for reply in grid.send_and_receive(messages, timeout=timeout):
        if reply.has_error():
            raise RuntimeError(f"node {reply.metadata.src_node_id} failed to answer: {reply.error.reason}")
        mapping[int(reply.content["metrics"]["partition-id"])] = reply.metadata.src_node_id
    if sorted(mapping) != list(range(clients)):
        raise RuntimeError(f"expected partitions 0..{clients - 1}, got {sorted(mapping)}")
    return mapping


def run_server(grid: Grid, runs: Sequence[RunSettings], on_finish: Callable[[dict], None], progress: bool = True) -> None:
    """Each of ``runs`` in turn on ``grid`` (Flower's FedAvg loop, one fresh strategy per run);
    ``on_finish`` gets each run's record for the results JSON. The runs share the nodes, whose
    partition ids are asked once."""
    node_of_partition: dict[int, int] = {}
    for settings in runs:
        if len(node_of_partition) != settings.clients:
            node_of_partition = _partition_map(grid, settings.clients)
        on_finish(_run_one(grid, settings, node_of_partition, progress))


def _run_one(grid: Grid, settings: RunSettings, node_of_partition: Mapping[int, int], progress: bool) -> dict[str, Any]:
    s, started = settings, time.perf_counter()
    torch.manual_seed(s.seed)
    torch.set_num_threads(s.threads)
    _, _, x_val, y_val, num_classes = _tensors(s.data_spec())
    model = s.build_model(num_classes)
    strategy = PartitionSampledFedAvg(
        node_of_partition, s.seed, fraction_train=s.fraction, fraction_evaluate=0.0, min_available_nodes=s.clients
    )
    bar = tqdm(total=s.rounds, desc=s.label(), unit="round", disable=not progress, dynamic_ncols=True)

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        model.load_state_dict(arrays.to_torch_state_dict())
        acc = accuracy(model, x_val, y_val)
        if server_round:
            bar.update(1)
            bar.set_postfix(acc=f"{acc:.3f}")
        return MetricRecord({"accuracy": acc})

    try:
        result = strategy.start(
            grid, ArrayRecord(model.state_dict()), num_rounds=s.rounds,
            train_config=ConfigRecord(s.to_config()), evaluate_fn=evaluate,
        )  # fmt: skip
    finally:
        bar.close()
    server_metrics, train_metrics = result.evaluate_metrics_serverapp, result.train_metrics_clientapp
    rounds = range(1, s.rounds + 1)
    return {
        "algorithm": s.algorithm,
        "seed": s.seed,
        "partition": s.partition,
        "alpha": s.alpha if s.partition == "dirichlet" else None,
        "classes_per_client": s.classes_per_client if s.partition == "shards" else None,
        "initial_accuracy": float(server_metrics[0]["accuracy"]),
        "accuracy": [float(server_metrics[r]["accuracy"]) for r in rounds],
        "minority_accuracy": [float(train_metrics[r]["minority-accuracy"]) for r in rounds],
        "train_loss": [float(train_metrics[r]["train-loss"]) for r in rounds],
        "clients_per_round": [strategy.sampled_partitions(r) for r in rounds],
        "seconds": round(time.perf_counter() - started, 2),
    }


def results_header() -> dict[str, Any]:
    """What every federated results JSON starts with: the Flower version and the provenance
    (:mod:`fruitseg.provenance`) of the runs."""
    import flwr

    from fruitseg.provenance import provenance

    return {"framework": f"flwr {flwr.__version__}", "provenance": provenance(INFERENCE_PATH)}


def make_server_app(
    runs: Sequence[RunSettings] | None = None, on_finish: Callable[[dict], None] | None = None, progress: bool = True
) -> ServerApp:
    """A ServerApp for ``runs`` (simulation), or for the one run its run config describes (``flwr run``).

    ``on_finish`` receives each run's record; without it the records are written to the run
    config's ``result-json`` path, if any, as ``{"framework", "provenance", "runs": [record]}``.
    """
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        records: list[dict] = []
        run_server(grid, runs or [RunSettings.from_config(context.run_config)], on_finish or records.append, progress)
        if on_finish is None and context.run_config.get("result-json"):
            results = {**results_header(), "runs": records}
            Path(str(context.run_config["result-json"])).write_text(json.dumps(results, indent=1))

    return app


server_app = make_server_app()
