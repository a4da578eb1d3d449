"""Explanation: a trained model and images in, where it looks and whether it needs the lungs out.

``lungs`` finds each image's lung region, ``gradcam`` computes heatmaps, ``audit`` re-scores the
test split with the lungs hidden (the shortcut audit), ``overlays`` draws Grad-CAM for any files.
"""
