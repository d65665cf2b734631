"""The public surface: what ``resilience`` exports."""

import resilience


def test_all_is_sorted_and_complete() -> None:
    public = {n for n in dir(resilience) if n.isidentifier() and not n.startswith("_")} - {
        "core",
        "detectors",
        "errors",
        "hooks",
        "httpx2",
        "instrumentation",
        "httpx_transport",
        "requests_adapter",
        "retry",
        "shells",
        "strategies",
        "testing",
    }
    assert sorted(resilience.__all__) == resilience.__all__
    assert public | {"__version__"} == set(resilience.__all__)


def test_every_exported_name_resolves() -> None:
    for name in resilience.__all__:
        assert getattr(resilience, name) is not None
