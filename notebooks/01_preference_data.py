# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Preference data collection
#
# The first step of the ChatGLM-RLHF pipeline: pick good prompts, sample two (here three) responses per
# prompt from the SFT model, have several annotators compare them, and keep only the comparisons that are
# consistent. This notebook runs every step on the alignment gym, looks at what the filters drop and at the
# annotators' length bias, and then serves the human annotation page from a background thread.
#
# One command does the whole thing: `lit-rlhf-train experiment=gym_preferences` (see `docs/preference_data.md`).

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from lit_rlhf.collection.collect import filter_and_report, format_report, gym_prompts, sample_pairs
from lit_rlhf.collection.prompt_selection import GymQualityScorer, noisy_usage_log, select_prompts
from lit_rlhf.collection.response_pairs import Decoding
from lit_rlhf.collection.votes import annotate_with_simulators
from lit_rlhf.gym import AlignmentGym
from lit_rlhf.models import build_policy

torch.set_num_threads(1)
ARTIFACTS = Path(os.environ.get("LIT_RLHF_ARTIFACTS", "artifacts"))
SEED = 0
gym = AlignmentGym(SEED)

# %% [markdown]
# ## 1. Prompt selection
#
# Real usage logs hold re-typed duplicates, near-duplicates, too-short and unanswerable prompts. The gym
# mixes such noise into its prompts; the rule filters and the quality scorer (any object with
# `score(texts) -> list[PromptQuality]`, here the gym's) remove it. A cap per category keeps the set balanced.

# %%
log = noisy_usage_log(gym_prompts(gym, "train"), share=0.2, seed=SEED)
prompts, selection = select_prompts(
    log,
    min_words=2,
    near_duplicate_threshold=0.8,
    scorer=GymQualityScorer(),
    min_quality=0.5,
    max_per_category=30,
    seed=SEED,
)
report = selection.as_dict()
print("dropped:", report["dropped_total"])
print("examples:", {k: v[:2] for k, v in report["examples"].items()})

categories = sorted(report["before"])
x = range(len(categories))
fig, ax = plt.subplots(figsize=(6, 3))
ax.bar([i - 0.2 for i in x], [report["before"][c] for c in categories], width=0.4, label="usage log")
ax.bar([i + 0.2 for i in x], [report["after"].get(c, 0) for c in categories], width=0.4, label="selected")
ax.set_xticks(list(x), categories)
ax.set_ylabel("prompts")
ax.set_title("prompts per category")
ax.legend()
plt.show()

# %% [markdown]
# ## 2. Sampling responses
#
# Three responses per prompt from the policy checkpoint (the SFT checkpoint when the SFT notebook or stage
# has produced one, else the untrained embedded model), batched with the KV cache and left padding, seeded.
# Every pair of the three is compared, which is what makes preference cycles detectable.

# %%
sft = ARTIFACTS / "sft" / "checkpoint"
source = str(sft) if (sft / "config.json").exists() else "embedded"
model, tokenizer = build_policy(source, seed=SEED)
decoding = Decoding(max_new_tokens=24, temperature=1.0, top_p=1.0, batch_size=64)
samples, pairs, pair_skips = sample_pairs(
    model, tokenizer, prompts, k=3, decoding=decoding, seed=SEED, checkpoint=source
)
print(f"policy: {source}; {len(pairs)} pairs; skipped: {dict(pair_skips.counts)}")
samples[0]

# %% [markdown]
# ## 3. Simulated annotation
#
# Five simulated annotators, three per pair. Each makes a noisy Bradley–Terry choice on the gold utility
# plus `length_bias` utility per 10 extra words, says "tie" 10% of the time, and one of the five answers at
# random (an inconsistent annotator).

# %%
LENGTH_BIAS = 0.3
annotators = gym.annotators(5, temperature=0.3, length_bias=LENGTH_BIAS, tie_rate=0.1, inconsistent_share=0.2)
votes = annotate_with_simulators(pairs, annotators, gym.judge, per_pair=3, seed=SEED)
rows, report = filter_and_report(
    pairs,
    votes,
    min_agreement=0.6,
    judge=gym.judge,
    provenance={"checkpoint": source},
    pair_skips=pair_skips,
    selection=selection,
)
print(format_report(report))

# %% [markdown]
# ## 4. Length bias and agreement
#
# The gold judge says how often the longer response is really better; the votes say how often annotators
# pick it. The gap, growing with the length difference, is the length bias the reward model would learn
# unless the pairs are balanced by length bucket. The logistic fit recovers the configured bias.

# %%
length = report["length"]
buckets = [b for b in length["votes"] if b != "all"]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
axes[0].plot(buckets, [length["votes"][b]["longer_wins"] for b in buckets], "o-", label="annotator votes")
axes[0].plot(
    buckets, [length["gold"].get(b, {}).get("longer_wins", float("nan")) for b in buckets], "s--", label="gold judge"
)
axes[0].axhline(0.5, color="grey", lw=0.5)
axes[0].set_xlabel("length difference (words)")
axes[0].set_ylabel("longer response wins")
axes[0].set_title("length win-rate by bucket")
axes[0].legend()
per = report["agreement"]["per_annotator"]
names = sorted(per)
axes[1].bar(names, [per[n]["pairwise_agreement"] for n in names], label="pairwise agreement")
axes[1].plot(names, [per[n]["cohen_kappa_mean"] for n in names], "ko", label="mean Cohen's kappa")
axes[1].set_title("agreement per annotator")
axes[1].legend()
plt.tight_layout()
plt.show()
fit = length["fitted_length_bias"]
print(f"configured length bias {LENGTH_BIAS}, fitted {fit['length_bias']:.3f} (n={fit['n']})")
for name in names:
    print(name, {k: round(v, 3) for k, v in per[name].items()})

# %% [markdown]
# `sim-00` is the inconsistent annotator. With the SFT checkpoint its mean kappa is far below the others'
# (about 0.04 against 0.15–0.18 in our run); with the untrained model every annotator is near chance, because
# its three responses to a prompt hardly differ in quality and only the length bias and noise decide.
#
# ## 5. The preference data set
#
# These rows are what the reward model trains on (`${paths.artifacts}/preferences/preferences.jsonl`).

# %%
from lit_rlhf.collection.io import save_hf
from lit_rlhf.data.jsonl import write_jsonl

out = ARTIFACTS / "preferences_notebook"
write_jsonl(out / "preferences.jsonl", rows)
dataset = save_hf(rows, out / "preferences_hf")
print(len(rows), "rows ->", out)
rows[0]

# %% [markdown]
# ## 6. Human annotation, from this notebook
#
# The same pairs can be labelled by people. The server runs in a background thread; open its URL in a
# browser (`?annotator=<your id>`), or, as here, post labels through the API. `stop()` finishes in-flight
# requests and shuts it down; every submitted label is already committed to SQLite.

# %%
import httpx

from lit_rlhf.collection.server import AnnotationServer
from lit_rlhf.collection.storage import AnnotationStore

store = AnnotationStore(out / "annotations.sqlite", labels_per_pair=2)
store.add_pairs(pairs[:20])
server = AnnotationServer(store).start()
print("annotation page:", server.url + "/?annotator=me")
with httpx.Client(base_url=server.url) as client:
    for _ in range(3):
        item = client.get("/api/next", params={"annotator": "notebook"}).json()
        r = client.post("/api/labels", json={"pair_id": item["pair_id"], "annotator": "notebook", "choice": "left"})
        print(item["pair_id"], item["shown_order"], r.status_code, r.json())
server.stop()
[(v.pair_id, v.choice, v.shown_order) for v in store.votes()]
