"""The package version; it must equal the native library's ``sqlpool_version()``."""

__version__ = "0.1.0"
