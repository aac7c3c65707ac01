import aioiroh


def test_all_is_complete_and_importable():
    for name in aioiroh.__all__:
        assert hasattr(aioiroh, name), name
    assert len(set(aioiroh.__all__)) == len(aioiroh.__all__)


def test_error_hierarchy_rooted():
    for name in aioiroh.errors.__all__:
        assert issubclass(getattr(aioiroh, name), aioiroh.IrohError)


def test_public_classes_report_aioiroh_module():
    assert aioiroh.Endpoint.__module__ == "aioiroh"
    assert aioiroh.EndpointTicket.__module__ == "aioiroh"


def test_module_errors_exported_and_rooted():
    """Errors a user can meet (parsing, lookups, QAD, accept) are importable from aioiroh."""
    for name in (
        "AcceptError",
        "AddrParseError",
        "AddressLookupError",
        "DnsLookupError",
        "QadError",
        "RelayUrlParseError",
        "TicketParseError",
    ):
        cls = getattr(aioiroh, name)
        assert issubclass(cls, aioiroh.IrohError), name
        assert name in aioiroh.__all__
