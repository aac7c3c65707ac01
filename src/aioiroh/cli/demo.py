"""``make demo``: placeholder until the endpoint lands."""

if __name__ == "__main__":
    print("aioiroh demo: endpoint not yet implemented")
