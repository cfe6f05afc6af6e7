"""Container networking: a bridge, and per container a netns, a veth pair and an address."""

from paas.network.network import Attachment, Network, Orphans

__all__ = ["Attachment", "Network", "Orphans"]
