"""Images: base stacks, content-addressed layers and image manifests."""
