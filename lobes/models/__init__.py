"""The truncated SSL encoder, the layer fusion, heads, losses and the branch plan."""
