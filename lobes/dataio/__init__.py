"""Audio loading, crops, labels, datasets and batching of the recipes' manifests."""
