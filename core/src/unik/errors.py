"""Typed errors raised by unik and its plugins.

Every error a user can cause carries a message that says what went wrong and what to
do next.  The command line prints ``str(error)`` without a traceback for any
:class:`UnikError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class UnikError(Exception):
    """Base class of every error unik raises on purpose."""


class UserError(UnikError):
    """An error the user caused and can fix (a bad value, a missing file, a port in use).

    Its message is one sentence that says what to do; a running application prints it
    without a traceback (``UNIK_TRACEBACK=1`` prints the traceback too).
    """


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'unix'?)`` for the choice closest to a misspelt ``word``, else ``""``.

    Choices equally close are all named, in order (``--ipv5``: ``'--ipv4' or '--ipv6'``).
    """
    import difflib  # only when a name is wrong

    # Options are compared without their dashes, which would make --count look like --net.
    bare = {c.lstrip("-"): c for c in sorted(set(choices))}
    matcher = difflib.SequenceMatcher(b=word.lstrip("-"))
    scores: dict[str, float] = {}
    for choice in bare:
        matcher.set_seq1(choice)
        scores[choice] = matcher.ratio()
    best = max(scores.values(), default=0.0)
    if best < 0.6:
        return ""
    close = [repr(bare[c]) for c in bare if scores[c] == best][:3]
    return f" (did you mean {' or '.join(close)}?)"


# --- configuration and composition -------------------------------------------------


class ConfigError(UserError):
    """A value in an application's configuration is wrong.

    The message names the file, the table and the key, as ``file: [table] key: why``.
    """

    def __init__(self, file: str, table: str, key: str | None, why: str) -> None:
        self.file, self.table, self.key, self.why = file, table, key, why
        where = f"[{table}]" + (f" {key}" if key else "")
        super().__init__(f"{file}: {where}: {why}")


class ProjectNotFound(UnikError):
    """No ``pyproject.toml`` with a ``[tool.unik]`` table was found."""


class CompositionError(UnikError):
    """The device graph cannot be resolved."""


class MissingProvider(CompositionError):
    """No installed plugin provides a device the graph needs."""

    def __init__(self, device: str, kind: str, target: str, needed_by: str, hint: str) -> None:
        self.device, self.kind, self.target, self.needed_by = device, kind, target, needed_by
        super().__init__(
            f"device {device!r} (kind {kind!r}, needed by {needed_by}) has no provider "
            f"for target {target!r}: {hint}"
        )


class AmbiguousProvider(CompositionError):
    """Two providers of the same priority both apply to one device."""

    def __init__(self, device: str, kind: str, names: Sequence[str], table: str) -> None:
        self.device, self.kind, self.names = device, kind, list(names)
        super().__init__(
            f"device {device!r} (kind {kind!r}) could come from {', '.join(names)}: "
            f"choose one with `provider = \"...\"` in [{table}]"
        )


class CycleError(CompositionError):
    """The device graph has a cycle; ``cycle`` lists the devices on it, in order."""

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = list(cycle)
        super().__init__("device graph has a cycle: " + " -> ".join(self.cycle))


class KindConflict(CompositionError):
    """Two parts of the graph ask for one device name with different kinds."""


class BadKey(UserError):
    """A configuration key (``--net``, ``--port``...) is unknown or has a bad value."""


# --- plugins -----------------------------------------------------------------------


class PluginError(UnikError):
    """A plugin failed to load, is incompatible, or registered something wrong."""


class IncompatiblePlugin(PluginError):
    """A plugin supports a core API range that excludes this core."""


class DuplicateName(PluginError):
    """Two plugins registered the same name (a target, provider, kernel or key)."""

    def __init__(self, what: str, name: str, first: str, second: str) -> None:
        self.what, self.name, self.first, self.second = what, name, first, second
        super().__init__(
            f"{what} {name!r} is registered by two plugins: {first} and {second}; "
            f"uninstall one of them or disable it with UNIK_DISABLE_PLUGINS={second}"
        )


class UnknownTarget(UnikError):
    """The requested target is not installed."""


# --- build and run -----------------------------------------------------------------


class BuildError(UnikError):
    """A target's emitter could not produce the artifact."""


class RunError(UnikError):
    """A target's runner could not start or supervise the artifact."""


class NotConfigured(UnikError):
    """``build`` or ``run`` was asked for before ``configure``."""


# --- devices -----------------------------------------------------------------------


class HostNetworkUnavailable(UnikError):
    """The host's sockets were reached for on a target that has none (:mod:`unik.hostsockets`).

    Deliberately not an :class:`OSError`: a library catching those to retry or fall back
    would hide it; the message names the call and the event-loop method to use.
    """


class DeviceError(UnikError):
    """A device operation failed."""


class DeviceUnavailable(DeviceError, UserError):
    """A device could not be acquired (missing file, no permission, no TAP support)."""


class DeviceClosed(DeviceError):
    """The device was used after ``disconnect()``."""


class ReadOnlyDevice(DeviceError):
    """A write was attempted on a read-only device."""


class OutOfRange(DeviceError):
    """A block operation addressed sectors beyond the end of the device."""


class UnsupportedOperation(DeviceError):
    """The device does not implement an optional operation (``discard`` and such)."""


class KeyNotFound(DeviceError):
    """A key/value store has no entry for a key."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"no such key: {key!r}")


class NotAValue(DeviceError):
    """A key/value store key names a dictionary, not a value."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"{key!r} is a dictionary, not a value")


class NotSeeded(DeviceError):
    """Random output was requested before the generator was seeded."""


# --- TLS ---------------------------------------------------------------------------


class TLSError(DeviceError, ConnectionError):
    """A TLS flow failed; that flow is closed and every other flow goes on.

    It is also a :class:`ConnectionError`, so a handler written for plain TCP flows
    (``except ConnectionError``) handles a TLS failure the same way.
    """


class TLSHandshakeError(TLSError):
    """The handshake failed: no common protocol or cipher, a fatal alert, the peer left."""


class TLSHandshakeTimeout(TLSHandshakeError):
    """The handshake did not finish within the configured time."""


class TLSCertificateError(TLSHandshakeError):
    """The peer's certificate failed verification (untrusted, expired, wrong hostname).

    ``verify_code`` and ``verify_message`` are OpenSSL's, when it gave them.
    """

    def __init__(self, message: str, verify_code: int | None = None, verify_message: str | None = None) -> None:
        super().__init__(message)
        self.verify_code, self.verify_message = verify_code, verify_message


class TLSProtocolError(TLSError):
    """The peer broke the protocol after the handshake: garbage, a bad record, a fatal alert."""


class TLSTruncated(TLSProtocolError):
    """The connection ended without a TLS close_notify: the data may have been cut short."""
