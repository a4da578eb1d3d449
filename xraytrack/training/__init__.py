"""Training: a config and prepared data in, a fitted model and a fully logged MLflow run out.

``fitting`` builds the one set of ``Model.fit`` arguments that every path uses (train, a
comparison's strategies, a search's trials and its default baseline); ``balancing`` decides what
an epoch of the training split looks like; ``train``, ``tune`` and ``compare`` are the three jobs.
"""
