"""Example audited models: release entrypoints for the demo spam filters and small image classifiers."""
