"""Identity and addressing: keys, relay URLs, endpoint addresses, tickets (iroh-base)."""

from .key import EndpointId, PublicKey, SecretKey, Signature

__all__ = ["EndpointId", "PublicKey", "SecretKey", "Signature"]
