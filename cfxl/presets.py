"""Every preset in one place: the settings of each run cfxl makes for the workbooks, with why.

Plain numbers and dicts under torch's names (lr, momentum, betas, eps, weight_decay), so any
module may read them without importing torch; the records modules turn them into settings.
"""

from __future__ import annotations

SEED = 42  # one seed for every small model cfxl trains for a sheet, as fastai's examples use

# `cfxl train` and `cfxl export` by default: a recipe that generalises. On real MovieLens 100k
# (80/20 split, one thread) it reached a validation RMSE of 0.902 in 0.34 s, where Surprise's
# SVD reaches 0.933 in 0.79 s and fastai's collab_learner 0.918 in 1.64 s; cfxl 0.1's defaults
# (bs 64, a constant lr, 3 epochs, no weight decay) overfit to 1.121, no better than predicting
# the mean (1.124). Large batches with one cycle of lr train fast and settle at the end; a little
# weight decay keeps the factors of rarely rated movies from memorising their few ratings (2e-4
# scored 0.910, 3e-4 0.923); 8 epochs gained nothing over 5. Keys are Config fields.
TRAIN_DEFAULTS = dict(model="dotbias", opt="adam", lr=1e-2, schedule="onecycle", bs=1024,
                      weight_decay=1e-4, epochs=5,
                      # the epoch with the lowest validation loss is the model kept: a run
                      # that starts to overfit ends with its best weights, not its last
                      keep_best=True, patience=0)

# What the lesson's runs share, spelled out so that cfxl's defaults (above) never change them:
# batch size 64, a constant lr unless staged, the last epoch kept, no early stop. epochs=3 is
# cfxl 0.1's default, kept so the runs' recorded settings do not change (stages set their own).
_LESSON = dict(bs=64, epochs=3, schedule="constant", weight_decay=0.0, keep_best=False,
               patience=0)

# The lesson's experiments (lesson-workbooks.md §1.7): SGD with momentum for the dot models,
# Adam for the net, batch size 64, the lr dropped from 0.1 to 0.01 after three epochs.
# Keys are cfxl.engine.train.Config fields; `--preset lesson` is the run of the chosen model.
LESSON_RUNS = {
    "EmbeddingDot": {**_LESSON, **dict(model="dot", opt="momentum", momentum=0.9,
                                       weight_decay=1e-5, schedule="3@0.1,3@0.01")},
    "EmbeddingDotBias": {**_LESSON, **dict(model="dotbias", opt="momentum", momentum=0.9,
                                           weight_decay=2e-4, schedule="3@0.1,3@0.01")},
    "EmbeddingNet": {**_LESSON, **dict(model="net", opt="adam", lr=1e-3, weight_decay=1e-5,
                                       epochs=6)},
}
WORKBOOK_MODEL = "EmbeddingDotBias"  # the model behind the collab workbook's whole-model sheets

# The demo's example workbooks are committed to the repository, and every regeneration stays in
# its history: the demo caps its big sheets (the full-size ones take 24 MB; these about 8).
# `cfxl export`, `graddesc` and `unroll` write everything unless asked otherwise.
DEMO_MAX_ROWS = 1000        # rows of users, movies (the most rated) and predictions shown
DEMO_CF_STEPS = 10          # cf_* steps: the loss's first fall, a third of the sheets' 30
DEMO_UNROLLED_STEPS = 30    # the train sheet's steps: Adam's loss has bent by then

# The lesson's "subset for Excel": the most active users against the most rated movies.
SLICE_USERS, SLICE_MOVIES = 15, 15  # the lesson's crosstab is 15 x 15
LESSON_FACTORS = 5                  # the lesson's sheets show 5 factors
SLICE_VALID_PCT = 0.2               # of the slice's ratings held out, as fastai's valid_pct

# The lesson sheets' small models: full-batch Adam in float64 on the slice's training ratings,
# minimising MSE + weight_decay * (sum of squared parameters), the objective the sheets show
# and Solver minimises. Measured on the embedded sample (train / validation RMSE over the
# slice's 163 + 41 ratings; seed 42, seed 7), against 1.097 for predicting the training mean:
# EmbeddingDot 0.69 / 1.11, 0.72 / 1.11; EmbeddingDotBias 0.48 / 1.01, 0.48 / 1.01;
# EmbeddingNet 0.73 / 1.03, 0.72 / 1.03. The slice's ratings are as noisy as MovieLens', so
# little beats the mean by much: the biases do, the dot model's factors alone do not.
# The two dot models share one budget, as the lesson's experiments did. wd 0.01: at 0.005 the
# bias model fits its training ratings to 0.34 and validates at 1.05; at 0.02, 1.045, near the
# biases alone. EmbeddingDot gains nothing from more steps (300: train 0.44, valid 1.15).
LESSON_FITS = {
    "dot": dict(steps=100, lr=0.1, weight_decay=0.01),
    "bias": dict(steps=100, lr=0.1, weight_decay=0.01),
    # the net learns slower from its small embeddings: more steps at a smaller lr; trained
    # without dropout (LESSON_NET_DROPOUT), so the nn sheet's objective is what torch minimised;
    # wd 0.03: at 0.003 it memorises (train 0.34, valid 1.46), at 0.01 seed 7 validates at 1.20.
    # lr 0.002: at 0.01 (1,000 steps) a hidden unit's ReLU dies for good on some seeds, and its
    # yellow weights on the nn sheet then drive nothing
    "net": dict(steps=2000, lr=0.002, weight_decay=0.03),
}
# The lesson's dropout (0.05, 0.5) on 10 hidden units, full batch on 168 ratings, leaves the net
# near the mean rating (validation RMSE 0.85 to 1.0); the sheet shows it at inference anyway.
LESSON_NET_DROPOUT = (0.0, 0.0)

# The cf_* sheets: 30 full-batch steps of the bias sheet's model, each optimizer from one start.
# lrs that lower the slice's MSE clearly in 30 steps (2.46 to about 0.23, 0.66 and 0.20). The
# mean over the ratings makes each gradient small, so SGD takes a large lr; momentum 0.9
# multiplies the step by up to 10, and at 0.5 its overshoot and recovery show in the loss.
CF_STEPS = 30
CF_LRS = {"sgd": 5.0, "momentum": 0.5, "adam": 0.05}
CF_MOMENTUM = 0.9
CF_BETAS = (0.9, 0.999)  # torch's Adam defaults: the lr above is the only setting tuned

# The unrolled train sheet: K steps of F factors, and lrs that train visibly within K steps.
UNROLLED_STEPS = 50    # enough for every optimizer's loss curve to bend, small enough to recompute fast
UNROLLED_FACTORS = 3   # each factor adds 6 (n_users + n_movies) formulas per step to the sheet
UNROLLED_LRS = CF_LRS  # the same slice model, full batch: the same lrs train it visibly

# The optimizer workbook's line, y = a*x + b, one sheet per optimizer (cfxl.records.graddesc).
# torch's rules: lr 1e-4 for plain SGD as the lesson; the others sized so that b (which must move
# from 1 to 30) gets close within the epochs shown while a settles near 2 without diverging.
LINE_TORCH = {
    "sgd": dict(lr=1e-4),
    "momentum": dict(lr=1e-5, momentum=0.9),  # torch sums, the lesson averages: lr/10 is alike
    "adagrad": dict(lr=3.0, eps=1e-10, epochs=8),
    "rmsprop": dict(lr=0.1, alpha=0.9, epochs=8),
    # torch's betas, and epochs enough to converge: lr 0.5 over 30 epochs takes the loss from
    # ~28 to ~0.01, flat over the last epochs, b and a within 1e-3 of 30 and 2 (seeds 42 and 7);
    # 8 epochs stopped it still falling, b ~ 24; a larger lr jitters around the minimum
    # (Adam's steps stay about lr in size)
    "adam": dict(lr=0.5, betas=(0.9, 0.999), epochs=30),
    "adam_ann": dict(lr=1.0, betas=(0.9, 0.99), gamma=0.7, epochs=8),
}
# The lesson's own settings for its own rules (lesson-workbooks.md §3.4-3.11).
LINE_LESSON = {
    "sgd": dict(lr=1e-4),
    "momentum": dict(lr=1e-4, momentum=0.9),
    "adagrad": dict(lr=1e-3),
    "rmsprop": dict(lr=0.02, alpha=0.9),
    "adam": dict(lr=1.0, betas=(0.7, 0.9)),
    "adam_ann": dict(lr=1.0, betas=(0.9, 0.95)),
    # the lesson's adam settings and its beta 0.9 for d; torch has none, so both rules use these
    "eve": dict(lr=1.0, betas=(0.7, 0.9), beta3=0.9, epochs=8),
}

# CFXL_TRAIN(ratings, ...): the bias model on a sheet's ratings, full-batch Adam, seeded.
FUNCTION_TRAIN = dict(n_factors=5, epochs=300, lr=0.1)

# Recommendations (cfxl.engine.recommend, the recommend, similar and me sheets).
TOP_N = 10                # movies a recommendation or a neighbour list shows, as the issue asks
SIMILAR_MIN_RATINGS = 20  # a neighbour rated fewer times has factors barely moved from their start
ME_MOVIES = 25            # the me sheet's movies to rate: the most rated, the ones a reader knows
# Fold-in: a new user's (vector, bias) by ridge regression of the model's pre-sigmoid score on
# the rated movies' factors, in closed form. lam 1.0 pulls a user with a few ratings toward the
# zero vector (the movie biases alone) and keeps the (factors + 1)-square system well conditioned
# (MINVERSE in a sheet gives numpy's solution to 1e-12); the margin keeps a rating at either end
# of the range inside the open sigmoid range: a quarter star, half the half-star step, so the
# logit of a 5.0 is finite and still above a 4.5's.
FOLD_IN_LAMBDA = 1.0
FOLD_IN_MARGIN = 0.25

# AdamW (torch.optim.AdamW: decoupled weight decay, fastai's default optimizer) in the optimizer
# workbook, beside adam. The line: adam's lr, betas and epochs, so the decay is the only
# difference, and torch's default weight decay, 0.01. It matters visibly there: every step
# shrinks b by lr*weight_decay*b (0.5%) while Adam's steps stay about lr in size whatever the
# gradient, so b settles where the two balance, near 22 instead of the true 30, with a near 2.1
# making up for it and the loss near 4.7 where adam's reaches 0.04 (seeds 42 and 7; 0.001 ends
# b near 29.1, 0.1 near 5). A decay meant for big, redundant factor tables is strong on a line's
# two parameters: the sheet shows why it is tuned per model.
LINE_ADAMW = {"adamw": dict(lr=0.5, betas=(0.9, 0.999), weight_decay=0.01, epochs=30)}
# The cf_adamw sheet: cf_adam's lr and fastai's lesson's weight decay (fit_one_cycle(..., wd=0.1)).
# Over the 30 steps it shrinks the factors by about 4% (mean |value| 0.540 against 0.561 at 0)
# and leaves the loss about as low (0.180 against 0.179); 1.0 would hold it at 0.29.
CF_ADAMW = dict(lr=0.05, weight_decay=0.1)
