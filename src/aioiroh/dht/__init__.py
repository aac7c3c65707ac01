"""The BitTorrent Mainline DHT (BEP 5, 42-44): a bencode codec, a sans-I/O KRPC core and an
asyncio UDP driver, enough to store and fetch BEP 44 mutable items (pkarr signed packets)."""
