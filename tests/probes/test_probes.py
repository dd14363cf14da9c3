"""Probes recover a planted linear signal and ignore noise; the V-probe learns; scores split classes apart."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pretrain.model import ModelConfig, build_model
from probes.linear import layerwise, majority, probe_layers, score, validation_split
from probes.states import Markers, end_states, query_ids
from probes.vprobe import predict, train_vprobe


def test_planted_linear_signal_is_recovered():
    rng = np.random.default_rng(0)
    n, d = 1200, 32
    signal = rng.normal(size=(n, d))
    noise = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    y = (signal @ w > 0).astype(int)
    states = np.stack([noise, signal], axis=1)  # layer 0: noise, layer 1: the signal
    scores = layerwise(states[:900], y[:900], states[900:], y[900:], "can_next")
    assert scores[1]["accuracy"] > 0.95 and 0.35 < scores[0]["accuracy"] < 0.65
    assert scores[1]["positive_accuracy"] > 0.9 and scores[1]["negative_accuracy"] > 0.9


def test_best_layer_is_chosen_off_test():
    """In the training problems layer 1 carries the signal cleanly and layer 2 noisily; in the test problems layer 1
    is noise. The layer is chosen on held-out training problems (1) and reported with its test score, even though
    layer 2 scores better on test: choosing on test would report an optimistic number."""
    rng = np.random.default_rng(0)
    n_train, n_test, d = 800, 400, 16
    w = rng.normal(size=d)
    signal = rng.normal(size=(n_train + n_test, d))
    y = (signal @ w > 0).astype(int)
    states = rng.normal(size=(n_train + n_test, 3, d))
    states[:n_train, 1] = signal[:n_train]
    states[:, 2] = signal + 1.5 * rng.normal(size=signal.shape)
    train, test = list(range(n_train)), list(range(n_train, n_train + n_test))
    groups = [i // 4 for i in range(n_train + n_test)]  # four examples per problem
    layers, best, validation = probe_layers(states, y, train, test, groups, "can_next")
    assert best == 1 and validation[1]["accuracy"] > 0.95
    assert max(layers, key=lambda s: s["accuracy"])["layer"] == 2 and layers[best]["accuracy"] < 0.7
    fit_idx, val_idx = validation_split(train, groups)
    assert sorted(fit_idx + val_idx) == train and not {groups[i] for i in fit_idx} & {groups[i] for i in val_idx}
    assert len(val_idx) == pytest.approx(0.2 * n_train, abs=4)
    with pytest.raises(ValueError, match="1 training problem"):
        validation_split([0, 1], [5, 5])


def test_scores_and_majority():
    y = np.array([1, 1, 0, 0, 0])
    s = score(np.array([1, 0, 0, 0, 1]), y, "nece")
    assert s["accuracy"] == 0.6 and s["positive_accuracy"] == 0.5 and s["negative_accuracy"] == pytest.approx(2 / 3)
    assert majority(np.array([0, 0, 1]), y, "nece")["accuracy"] == 0.6
    v = score(np.array([3, 23, 5]), np.array([3, 23, 23]), "value")
    assert v["known_accuracy"] == 1.0 and v["unknown_accuracy"] == 0.5 and v["n_known"] == 1


def test_constant_training_labels_fall_back_to_majority():
    x = np.random.default_rng(0).normal(size=(20, 2, 4)).astype(np.float32)
    out = layerwise(x[:10], np.zeros(10, int), x[10:], np.array([0] * 8 + [1] * 2), "known")
    assert [s["accuracy"] for s in out] == [0.8, 0.8]


def test_vprobe_learns_a_planted_token():
    """Label = whether token 7 is in the query; a frozen random model plus the rank-8 update and head learns it."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(n_layer=2, n_head=2, head_dim=16), 60)
    markers = Markers.for_model(model, 60)
    rng = np.random.default_rng(0)
    inputs, labels = [], []
    for _ in range(400):
        body = list(rng.integers(10, 60, size=12))
        has = rng.random() < 0.5
        query = list(rng.integers(10, 60, size=3))
        if has:
            query[rng.integers(3)] = 7
        inputs.append([*map(int, body), markers.start, *map(int, query), markers.end])
        labels.append(int(has))
    y = np.array(labels)
    probe = train_vprobe(model, inputs[:300], y[:300], 2, steps=400, batch_size=32, lr=1e-2)
    acc = (predict(probe, inputs[300:]) == y[300:]).mean()
    probe.remove()
    assert acc > 0.9
    assert not any(p.requires_grad for p in model.parameters())  # the model itself stayed frozen


def test_finetuned_detector_learns_a_planted_token_on_a_copy(tmp_path):
    """Detector v2 (a qv2e32 adapter + head) learns the V-probe's planted token; the model itself is untouched, and
    the saved detector scores as the trained one."""
    from pretrain.adapters import AdapterSpec
    from probes.adapter_probe import DETECTOR_DIR, AdapterDetector, load_adapter_detector, train_adapter_probe

    torch.manual_seed(0)
    model = build_model(ModelConfig(n_layer=2, n_head=2, head_dim=16), 60)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    markers = Markers.for_model(model, 60)
    rng = np.random.default_rng(0)
    inputs, labels = [], []
    for _ in range(400):
        query = list(rng.integers(10, 60, size=3))
        has = rng.random() < 0.5
        if has:
            query[rng.integers(3)] = 7
        inputs.append([*map(int, rng.integers(10, 60, size=12)), markers.start, *map(int, query), markers.end])
        labels.append(int(has))
    y = np.array(labels)
    probe = train_adapter_probe(model, inputs[:300], y[:300], 2, AdapterSpec.parse("qv2e32"), 300, 32, 1e-2)
    assert (predict(probe, inputs[300:]) == y[300:]).mean() > 0.9
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    probe.save(tmp_path / DETECTOR_DIR, markers)
    loaded = load_adapter_detector(model, None, tmp_path)
    np.testing.assert_array_equal(predict(loaded.probe, inputs[300:]), predict(probe, inputs[300:]))
    assert isinstance(loaded, AdapterDetector) and loaded.markers == markers


def test_end_states_read_the_last_real_token():
    torch.manual_seed(0)
    model = build_model(ModelConfig(n_layer=1, n_head=1, head_dim=16), 40).eval()
    seqs = [[1, 2, 3], [4, 5, 6, 7, 8], [9]]
    states = end_states(model, seqs, batch_size=2)
    assert states.shape == (3, 2, 16)
    with torch.no_grad():
        alone = model(torch.tensor([seqs[1]]), output_hidden_states=True).hidden_states[-1][0, -1]
    assert np.allclose(states[1, 1], alone.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="spare rows"):
        Markers.for_model(model, 64)
    assert query_ids(
        type("T", (), {"__call__": lambda self, s, **k: type("E", (), {"input_ids": [11]})()})(),
        Markers(1, 2, 3),
        ("a", "b"),
    ) == [1, 11, 2, 11, 3]
