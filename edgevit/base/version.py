"""The package version, in the bottom layer so that any module can stamp it without importing the package."""

VERSION = "0.1.0"
