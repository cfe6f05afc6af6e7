"""Access: the SSH keys allowed to push, and who an API token belongs to."""

from __future__ import annotations

from paas.gitserver.sshd import parse_public_key, validate_key_name
from paas.services.base import ServicesBase


class Access(ServicesBase):
    # --- SSH keys ----------------------------------------------------------------------------

    def add_ssh_key(self, name: str, public_key: str) -> str:
        """Allow ``public_key`` to push over SSH; returns its fingerprint."""
        validate_key_name(name)
        key = parse_public_key(public_key.strip())
        self.store.add_ssh_key(name, f"{key.type} {key.base64}")
        return key.fingerprint  # sshd sees it once the host rewrites authorized_keys

    def ssh_keys(self) -> dict[str, str]:
        """Key name -> fingerprint."""
        return {n: parse_public_key(k).fingerprint for n, k in self.store.ssh_keys().items()}

    # --- tokens ---------------------------------------------------------------------------------

    def token_owner(self, token: str | None) -> str | None:
        return self.store.token_owner(token) if token else None
