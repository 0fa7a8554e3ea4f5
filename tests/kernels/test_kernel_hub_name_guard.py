"""Our top-level package ``kernels`` shares its name with Hugging Face's hub-kernels library, which
transformers uses when ``is_kernels_available()`` says so. It must never say so because of us.

How transformers (5.x) decides: ``importlib.util.find_spec("kernels")`` (finds ours), then the version of
the ``kernels`` distribution, else of any distribution that ships a top-level ``kernels`` (ours:
``contract-review``), else ``kernels.__version__`` after importing it; available only for versions in
[KERNELS_MIN_VERSION, KERNELS_MAX_VERSION). See kernels/__init__.py.
"""

import importlib.metadata

import pytest

import kernels


def _hub_window():
    from transformers.utils import import_utils

    return (getattr(import_utils, "KERNELS_MIN_VERSION", "0.18.2"), getattr(import_utils, "KERNELS_MAX_VERSION", "0.19.0"))


def test_transformers_does_not_take_our_package_for_the_hub_library():
    from transformers.utils import import_utils

    try:
        import_utils.is_kernels_available.cache_clear()
    except AttributeError:
        pass
    try:
        hub = importlib.metadata.version("kernels")  # the real hub library, if someone installed it
    except importlib.metadata.PackageNotFoundError:
        hub = None
    if hub is None:
        assert import_utils.is_kernels_available() is False
    from transformers.integrations import hub_kernels

    assert getattr(hub_kernels, "_kernels_available", False) is False or hub is not None


def test_our_version_as_transformers_reads_it_is_outside_the_hub_window():
    from packaging.version import Version
    from transformers.utils.import_utils import _is_package_available

    _, version = _is_package_available("kernels", return_version=True)
    lo, hi = _hub_window()
    if version != "N/A":
        assert not (Version(lo) <= Version(version) < Version(hi)), (
            f"transformers reads our 'kernels' as version {version}, inside the hub library's window "
            f"[{lo}, {hi}): it would import hub functions from us")


def test_hub_library_names_fail_as_import_errors():
    assert kernels.IS_CONTRACT_REVIEW_KERNELS
    assert not hasattr(kernels, "__version__")
    with pytest.raises(ImportError):
        from kernels import get_kernel  # noqa: F401
    with pytest.raises(ImportError):
        from kernels import LayerRepository  # noqa: F401
