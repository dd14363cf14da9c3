# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Probing an iGSM model: what does it know, and does it regret its mistakes?
#
# Part 2.1 of *Physics of Language Models* shows that a GPT-2 trained on iGSM knows, before it writes anything,
# which parameters the question needs (`nece`) and, while it writes, which ones it could compute next
# (`can_next`). Part 2.2 shows that right after writing a wrong step ("Define A as" with A not computable yet) its
# states already say so: it *regrets*. This notebook reads a checkpoint's hidden states at those points and trains
# linear probes per layer. All logic lives in `probes/`; the notebook only calls it.
#
# Set `IGSM_CHECKPOINT` to a checkpoint folder (for example `runs/<run>/checkpoints/step_0004000` after
# `python -m pretrain.train +experiment=mini`); `IGSM_PROBLEMS` sets how many problems to probe.

# %%
import os
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from igsm.dataset import DataConfig, MistakeConfig
from pretrain.config import to_dataclass
from pretrain.evaluate import checkpoint_roles, load_checkpoint
from probes.examples import build_probe_set, probe_problem
from probes.linear import fit, majority, probe_layers
from probes.regret import ProbeDetector, regret_scores
from probes.states import Markers, end_states, labels_of, probe_inputs

checkpoint = Path(os.environ.get("IGSM_CHECKPOINT", "runs/mini_mini_none0.0_s0/checkpoints/latest"))
if checkpoint.name == "latest":
    checkpoint = checkpoint.parent / checkpoint.read_text().strip()
n_problems = int(os.environ.get("IGSM_PROBLEMS", "400"))
model, tokenizer, run_config = load_checkpoint(checkpoint, "auto", "fp32")
data = to_dataclass(DataConfig, run_config.data)
roles = checkpoint_roles(tokenizer, run_config, checkpoint)  # the tokens its run trained with in each role
markers = Markers.for_model(model, len(tokenizer))
print(f"{checkpoint}: {model.config.num_hidden_layers} layers, data {data.name}, probing {n_problems} problems")

# %% [markdown]
# ## Probing examples
# For each task, at most 10 (position, parameter) choices per problem: `nece` at the end of the prompt,
# `can_next` at the end of each solution sentence, `regret` right after each "Define A as" of a solution with
# real mistakes inserted (retry data at rate 0.5). Problems of the train template bins train the probes (a fifth of
# them held out to choose the best layer); those of the test bins score them.

# %%
tasks = {
    "nece": replace(data, mistakes=MistakeConfig()),
    "can_next": replace(data, mistakes=MistakeConfig()),
    "regret": replace(data, mistakes=MistakeConfig("retry", 0.5)),
}
sets = {task: build_probe_set(source, tokenizer, roles, n_problems, (task,)) for task, source in tasks.items()}
example = sets["regret"].examples[0]
seq = sets["regret"].sequences[example.seq]
print(
    "a regret example reads the state here:",
    repr(tokenizer.decode(seq[example.position - 8 : example.position + 1])),
    "| parameter:",
    example.names[0],
    "| mistake:",
    bool(example.label),
)

# %% [markdown]
# ## Hidden states and linear probes per layer

# %%
scores, states_by_task = {}, {}
for task, pset in sets.items():
    inputs = probe_inputs(pset, tokenizer, markers)
    y = labels_of(pset.examples)
    tr = [i for i, e in enumerate(pset.examples) if e.split == "train"]
    te = [i for i, e in enumerate(pset.examples) if e.split == "test"]
    states = end_states(model, inputs)
    states_by_task[task] = (states, y, tr, te)
    layers, layer, _ = probe_layers(states, y, tr, te, [e.seq for e in pset.examples], task)
    scores[task] = {"layers": layers, "best": layer, "majority": majority(y[tr], y[te], task)}
    best = layers[layer]
    print(
        f"{task:9s} best layer {best['layer']}: accuracy {best['accuracy']:.3f} (positives "
        f"{best['positive_accuracy']}, negatives {best['negative_accuracy']}); majority "
        f"{scores[task]['majority']['accuracy']:.3f}"
    )

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for task, s in scores.items():
    (line,) = ax.plot(
        [x["layer"] for x in s["layers"]], [100 * x["accuracy"] for x in s["layers"]], marker="o", label=task
    )
    ax.axhline(100 * s["majority"]["accuracy"], ls=":", color=line.get_color())
ax.set(xlabel="layer (0 = embeddings)", ylabel="test accuracy (%)", title="linear probes (dotted: majority)")
ax.legend()
plt.show()

# %% [markdown]
# ## Regret, step by step
# The regret probe of the best layer, applied to one problem solved with mistakes: its probability that each
# "Define A as" is a mistake, beside the truth.

# %%
states, y, tr, te = states_by_task["regret"]
layer = scores["regret"]["best"]
if len(np.unique(y[tr])) < 2:
    print("the training examples have one regret label only: probe more problems")
else:
    detector = ProbeDetector(model, tokenizer, markers, fit(states[tr, layer], y[tr]), layer)
    problem, solution = probe_problem(tasks["regret"], 0)
    print(problem.prompt, "\n")
    for name, p, mistake in regret_scores(detector, problem, solution, tokenizer, roles):
        print(f"{p:5.2f}  {'MISTAKE' if mistake else '       '}  Define {name} as")
