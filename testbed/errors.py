"""The project's exception hierarchy. Library code raises these; only `main` functions exit."""


class TestbedError(Exception):
    """Base class of every error this project raises on purpose."""

    __test__ = False  # not a pytest test class, despite the name


class ConfigError(TestbedError):
    """A configuration value is wrong; the message names the key and the value."""


class SwitchDown(TestbedError):
    """The switch is not running (crashed and not restarted)."""
