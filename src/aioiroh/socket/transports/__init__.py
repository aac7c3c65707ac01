"""socket.transports layer."""
