"""Every preset in one place: the settings of each run cfxl makes for the workbooks, with why.

Plain numbers and dicts under torch's names (lr, momentum, betas, eps, weight_decay), so any
module may read them without importing torch; the records modules turn them into settings.
"""

from __future__ import annotations

SEED = 42  # one seed for every small model cfxl trains for a sheet, as fastai's examples use

# The lesson's experiments (lesson-workbooks.md §1.7): SGD with momentum for the dot models,
# Adam for the net, batch size 64, the lr dropped from 0.1 to 0.01 after three epochs.
# Keys are cfxl.engine.train.Config fields.
LESSON_RUNS = {
    "EmbeddingDot": dict(model="dot", opt="momentum", momentum=0.9, weight_decay=1e-5,
                         schedule="3@0.1,3@0.01", bs=64),
    "EmbeddingDotBias": dict(model="dotbias", opt="momentum", momentum=0.9, weight_decay=2e-4,
                             schedule="3@0.1,3@0.01", bs=64),
    "EmbeddingNet": dict(model="net", opt="adam", lr=1e-3, weight_decay=1e-5, epochs=6, bs=64),
}
WORKBOOK_MODEL = "EmbeddingDotBias"  # the model behind the collab workbook's whole-model sheets

# The lesson's "subset for Excel": the most active users against the most rated movies.
SLICE_USERS, SLICE_MOVIES = 15, 15  # the lesson's crosstab is 15 x 15
LESSON_FACTORS = 5                  # the lesson's sheets show 5 factors
SLICE_VALID_PCT = 0.2               # of the slice's ratings held out, as fastai's valid_pct

# The lesson sheets' small models: full-batch Adam on the slice's ratings, in float64.
LESSON_STEPS = 300  # the slice's 210 ratings converge in well under a second
LESSON_LR = 0.1     # 0.02 needs twice the steps to reach the same loss on the slice

# The cf_* sheets: 30 full-batch steps of the bias sheet's model, each optimizer from one start.
# lrs that lower the slice's MSE clearly in 30 steps (2.46 to about 0.23, 0.66 and 0.20). The
# mean over the ratings makes each gradient small, so SGD takes a large lr; momentum 0.9
# multiplies the step by up to 10, and at 0.5 its overshoot and recovery show in the loss.
CF_STEPS = 30
CF_LRS = {"sgd": 5.0, "momentum": 0.5, "adam": 0.05}
CF_MOMENTUM = 0.9

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
    "adam": dict(lr=0.5, betas=(0.9, 0.99), epochs=8),
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
}

# CFXL_TRAIN(ratings, ...): the bias model on a sheet's ratings, full-batch Adam, seeded.
FUNCTION_TRAIN = dict(n_factors=5, epochs=300, lr=0.1)
