"""xraytrack: experiment tracking for chest X-ray classifiers."""
