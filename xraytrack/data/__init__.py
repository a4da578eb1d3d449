"""Data: a folder of X-rays in, a duplicate-aware split over cached pixels out.

``index`` finds the images and their classes, ``images`` decodes one file, ``dedup`` groups
near-duplicates, ``split`` makes (and reads back) the train/val/test manifest, ``cache`` decodes
every image once, ``sequence`` batches the cache for Keras, ``prepare`` ties them together.
"""
