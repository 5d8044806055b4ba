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
# # Evaluating policies: pairwise, absolute, lengths, probes, people
#
# How `lit-rlhf-eval` judges one checkpoint against another, piece by piece, with plain functions you
# can call from your own code. We compare a briefly SFT-trained policy with the untrained model it
# started from on the gym's held-out prompts, judged three ways: the gym's **gold judge** (it plays the
# human evaluator), a **reward model**, and **people** through the annotation page (here simulated
# annotators click for them). Then we write the same Markdown report the pipeline ends with.
#
# On the command line all of this is one command (after the pipeline's stages):
#
# ```bash
# lit-rlhf-eval                                   # PPO and DPO vs SFT, gold judge -> artifacts/eval/report.md
# lit-rlhf-eval eval.judge=reward_model
# lit-rlhf-eval '~eval.candidates' '+eval.candidates={mine: /path/to/a}' \
#     eval.baseline.name=base eval.baseline.path=/path/to/b
# ```

# %%
import os
from functools import partial

import lightning as L
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))
L.seed_everything(0)
quiet = {
    "accelerator": "cpu",
    "logger": False,
    "enable_checkpointing": False,
    "enable_model_summary": False,
    "enable_progress_bar": False,
}
artifacts = os.environ.get("LIT_RLHF_ARTIFACTS", "artifacts")

# %% [markdown]
# ## 1. Two policies to compare

# %%
import copy

from lit_rlhf.gym import AlignmentGym
from lit_rlhf.models import build_policy
from lit_rlhf.sft.data import SFTDataModule
from lit_rlhf.sft.module import SFTModule

gym = AlignmentGym(seed=0)
untrained, tokenizer = build_policy("embedded", seed=0)
sft = copy.deepcopy(untrained)
L.Trainer(max_epochs=3, gradient_clip_val=1.0, **quiet).fit(
    SFTModule(sft, tokenizer, optimizer=partial(torch.optim.AdamW, lr=3e-3, betas=(0.9, 0.98))),
    datamodule=SFTDataModule(tokenizer, train=gym.demonstrations("train", 2), batch_size=32, max_length=96),
)
_ = sft.eval()  # assigned so that the notebook does not print the model

# %% [markdown]
# ## 2. Answers with shared seeds, judged pairwise
# Every model answers each held-out prompt twice; answer k of every model uses the same sampling seed,
# so identical models would tie everywhere and the differences come from the models. A win is a
# higher gold score; the interval is a 95% percentile bootstrap over the comparisons.

# %%
from lit_rlhf.evaluation.answers import flatten, gold_judge, judge_rounds, sample_rounds
from lit_rlhf.evaluation.pairwise import format_table, outcomes, win_tie_loss

prompts = gym.prompts("test")
texts, categories = [p.text for p in prompts], [p.category for p in prompts]
answers = {
    name: sample_rounds(model, tokenizer, texts, rounds=2, max_new_tokens=24, seed=0)
    for name, model in (("untrained", untrained), ("sft", sft))
}
gold = {
    name: flatten(judge_rounds(gold_judge(gym.judge), texts, rounds), categories) for name, rounds in answers.items()
}
gold_table = win_tie_loss(outcomes(gold["sft"][0], gold["untrained"][0]), gold["sft"][1])
print(format_table(gold_table, "SFT", "untrained"))

# %% [markdown]
# ## 3. Absolute scores (1-10), lengths and capability probes
# AlignBench-style absolute scores: the gold score over the ideal answer's score for the same prompt,
# mapped to 1-10, so categories on different reward scales can sit side by side.

# %%
from omegaconf import OmegaConf

from lit_rlhf.evaluation.answers import absolute_scores, length_stats
from lit_rlhf.evaluation.compare import probe_rates

absolute = {name: absolute_scores(gym.judge, texts, categories, rounds) for name, rounds in answers.items()}
lengths = {name: length_stats(categories, rounds) for name, rounds in answers.items()}
probe_options = OmegaConf.create({"max_new_tokens": 24})
probes = {
    name: probe_rates(model, tokenizer, gym, probe_options, seed=0)
    for name, model in (("untrained", untrained), ("sft", sft))
}
for name in answers:
    print(
        f"{name:>9}: 1-10 score {absolute[name]['all']:.2f}, mean words {lengths[name]['all']['mean']:.1f}, "
        f"probes {probes[name]}"
    )

# %% [markdown]
# ## 4. A reward model as the judge
# Any object with `score(prompts, responses)` works. A reward model's scores have no fixed zero, so
# only comparisons between answers to the same prompt mean much; here a small one trained on gym
# comparisons for a minute.

# %%
from lit_rlhf.evaluation.answers import reward_model_judge
from lit_rlhf.gym.comparisons import gym_preference_rows
from lit_rlhf.reward.data import PreferenceDataModule
from lit_rlhf.reward.model import build_reward_model
from lit_rlhf.reward.module import RewardModelModule

rm_model, rm_tokenizer = build_reward_model("embedded", seed=0)
rm_module = RewardModelModule(rm_model, rm_tokenizer, optimizer=partial(torch.optim.AdamW, lr=1e-3), prior_coef=0.01)
pairs = gym_preference_rows(gym, "train", pairs_per_prompt=2, seed=0)
L.Trainer(max_epochs=3, **quiet).fit(
    rm_module, datamodule=PreferenceDataModule(rm_tokenizer, train=pairs, batch_size=32, max_length=96)
)
rm = {
    name: flatten(judge_rounds(reward_model_judge(rm_module.scorer), texts, rounds), categories)
    for name, rounds in answers.items()
}
rm_table = win_tie_loss(outcomes(rm["sft"][0], rm["untrained"][0]), rm["sft"][1])
print(format_table(rm_table, "SFT", "untrained (reward-model judge)"))

# %% [markdown]
# ## 5. A human evaluation round
# `write_blind_pairs` puts the two models' answers side by side in random A/B order, with ids that give
# nothing away; which model is A goes to a key file the annotators never see. Identical answers are
# ties and are not asked. People label the pairs on the annotation page
# (`lit-rlhf-annotate serve --db .../labels.sqlite --pairs .../pairs.jsonl`); here the gym's simulated
# annotators fill the same database through the same store the page writes to.

# %%
from lit_rlhf.collection.io import read_pairs
from lit_rlhf.collection.storage import AnnotationStore
from lit_rlhf.evaluation.human import human_outcomes, write_blind_pairs

round_dir = f"{artifacts}/notebook_eval/human"
written = write_blind_pairs(round_dir, texts, categories, ("untrained", answers["untrained"]), {"sft": answers["sft"]})
store = AnnotationStore(f"{round_dir}/labels.sqlite", labels_per_pair=3)
store.add_pairs(read_pairs(written["pairs_file"]))
for annotator in gym.annotators(3, temperature=0.3):
    while (pair := store.next_pair(annotator.name)) is not None:
        label = annotator.label(pair["prompt"], pair["left"], pair["right"], gym.judge)
        store.submit(pair["pair_id"], annotator.name, {"A": "left", "B": "right", "tie": "tie"}[label.choice])
human = human_outcomes(f"{round_dir}/key.jsonl", store.votes())["sft"]
store.close()
human_table = win_tie_loss(human["outcomes"], human["categories"])
print(written["pairs"], "pairs asked;", human["counts"])
print(format_table(human_table, "SFT", "untrained (people)"))

# %% [markdown]
# The simulated people agree with the gold judge on direction but by a smaller margin: they choose
# noisily (Bradley-Terry on the gold utility at temperature 0.3), as real annotators do, and the reward
# model, trained for a minute on a few hundred comparisons, is noisier still. The bootstrap intervals
# show how far each verdict can be trusted.

# %% [markdown]
# ## 6. The report
# The same writer `lit-rlhf-eval` uses: a Markdown file with PNG plots next to it.

# %%
from IPython.display import Image, Markdown, display

from lit_rlhf.evaluation.report import write_report

results = {
    "judge": "gold",
    "samples_per_prompt": 2,
    "tie_margin": 0.0,
    "prompts": {"n": len(texts), "source": "the gym's test split"},
    "baseline": {"name": "untrained", "path": "embedded"},
    "candidates": {"sft": ["trained above"]},
    "pairwise": {"sft": gold_table},
    "absolute": absolute,
    "probes": probes,
    "lengths": lengths,
}
report = write_report(results, f"{artifacts}/notebook_eval")
display(Markdown(report.read_text().split("## Absolute")[0]))
display(Image(filename=str(report.parent / "pairwise.png")))
