"""Identity and addressing: keys, relay URLs, endpoint addresses, tickets (iroh-base)."""

from .key import EndpointId, PublicKey, SecretKey, Signature
from .relay_url import RelayUrl

__all__ = ["EndpointId", "PublicKey", "RelayUrl", "SecretKey", "Signature"]
