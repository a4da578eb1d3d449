"""Evaluation: labels and predicted probabilities in, numbers, tables and figures out.

``metrics.scores`` is the one function that turns predictions into numbers: the test split of a
run, a comparison's strategies and the audit all call it. ``test_split`` logs a run's test
evaluation, ``predictions`` writes and reads ``predictions.csv``, ``comparison`` adds bootstrap
intervals across strategies, ``plots`` draws the figures.
"""
