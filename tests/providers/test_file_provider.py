"""FileProvider: JSON and TOML, reloads on change (editor renames too), bad edits keep the last good."""

from __future__ import annotations

import json
import os
import sys
import types
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from corsengine import Change, Policy
from corsengine.exceptions import ConfigurationError, ProviderError
from corsengine.providers import FileProvider
from corsengine.testing import FakeClock

from .loads import STUCK, CountedLoads, settled


def write_atomically(path: Path, text: str) -> None:
    """What vim, VS Code and most tools do: write a temporary file, rename it over the original."""
    temporary = path.with_name(f".{path.name}.swp")
    temporary.write_text(text)
    os.replace(temporary, path)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.anyio
async def test_json_and_toml_documents(tmp_path: Path) -> None:
    as_json = tmp_path / "cors.json"
    as_json.write_text(json.dumps({"origins": ["https://a.example"], "version": "3"}))
    provider = FileProvider(as_json)
    assert (await provider.load()).entries == {"https://a.example"}
    assert provider.version == "3"
    as_toml = tmp_path / "cors.TOML"
    as_toml.write_text('version = "4"\norigins = ["https://b.example"]\npatterns = ["https://*.b.example"]\n')
    provider = FileProvider(as_toml)
    assert (await provider.load()).entries == {"https://b.example", "https://*.b.example"}
    assert provider.version == "4"
    other = tmp_path / "allowlist"
    other.write_text('["https://c.example"]')
    assert (await FileProvider(other, format="json").load()).entries == {"https://c.example"}
    assert repr(FileProvider(other, format="json")) == f"FileProvider({str(other)!r})"
    assert FileProvider(other, format="json").version is None


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "cors.json",
            '{\n  "origins": [\n    "https://a.example"\n    "https://b.example"\n  ]\n}',
            "line 4 column 5",
        ),
        ("cors.toml", 'origins = [\n  "https://a.example",\n  https://b.example\n]\n', "line 3"),
        ("cors.json", '[\n  "https://a.example",\n  "https://a.example/oops"\n]', "(line 3)"),
        ("cors.toml", 'origins = [\n  "https://a.example",\n  "https://a.example/oops",\n]\n', "(line 3)"),
        ("cors.json", '{"origins": [], "regexes": ["x"]}', "allow_regexes=True"),
        ("cors.json", b"\xff\xfe", "not UTF-8"),
        ("cors.json", "[" + '"https://a.example",' * 100 + '"https://a.example"]', "over the 1000-byte cap"),
    ],
)
async def test_a_bad_file_is_rejected_naming_the_line(
    tmp_path: Path, name: str, text: str | bytes, message: str
) -> None:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ProviderError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        await FileProvider(path, max_bytes=1000).load()
    assert str(path) in str(caught.value)


@pytest.mark.anyio
async def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match=r"cannot read .*missing\.json: No such file"):
        await FileProvider(tmp_path / "missing.json").load()


def test_bad_options_fail_at_construction(tmp_path: Path) -> None:
    # Every option's checks: tests/providers/test_options.py.
    with pytest.raises(ConfigurationError, match="from its suffix") as caught:
        FileProvider(tmp_path / "cors.yaml")
    assert caught.value.codes == ("corsengine.E025",)
    with pytest.raises(ConfigurationError, match="format='yaml'") as caught:
        FileProvider(tmp_path / "cors.json", format="yaml")  # type: ignore[arg-type]
    assert caught.value.codes == ("corsengine.E025",)
    with pytest.raises(ConfigurationError, match="poll_interval=0") as caught:
        FileProvider(tmp_path / "cors.json", poll_interval=0)
    assert caught.value.codes == ("corsengine.E024",)


def test_changed_sees_in_place_writes_renames_and_deletions(tmp_path: Path) -> None:
    path = tmp_path / "cors.json"
    path.write_text('["https://a.example"]')
    provider = FileProvider(path)
    changed, seen = provider.changed(None)
    assert changed
    assert provider.changed(seen) == (False, seen)
    # Same size, same mtime (restored by hand), but a new inode: an editor's rename.
    stat = path.stat()
    write_atomically(path, '["https://b.example"]')
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    changed, seen = provider.changed(seen)
    assert changed
    path.unlink()
    assert provider.changed(seen) == (True, None)


class CountingFileProvider(CountedLoads, FileProvider):
    pass


async def _run_policy_with_watcher(
    path: Path, body: Callable[[Policy, CountingFileProvider], Any], **options: Any
) -> None:
    # The clock never moves: only the watcher makes the policy reload.
    provider = CountingFileProvider(path, poll_interval=0.01, **options)
    policy = Policy(allow_origins=provider, clock=FakeClock())
    async with anyio.create_task_group() as task_group:
        policy._resolver.attach(task_group)
        try:
            await body(policy, provider)
        finally:
            task_group.cancel_scope.cancel()


async def first_request_after_the_reload(
    policy: Policy, provider: CountingFileProvider, change: Callable[[], object], origin: str
) -> bool:
    """Make ``change`` to the file, await the one load the watcher starts for it (not a
    sleep of the documented bound), and ask: the first request after that load."""
    loads = provider.loads
    change()
    await provider.loaded(loads + 1)
    await settled(policy)
    return (await policy.aevaluate(origin)).allowed


@pytest.mark.anyio
async def test_the_watcher_reloads_after_an_editor_rename_and_a_bad_edit_keeps_the_last_good(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cors.json"
    path.write_text('["https://a.example"]')

    def rename(text: str) -> Callable[[], None]:
        return lambda: write_atomically(path, text)

    async def body(policy: Policy, provider: CountingFileProvider) -> None:
        assert (await policy.aevaluate("https://a.example")).allowed
        added = rename('["https://a.example", "https://b.example"]')
        assert await first_request_after_the_reload(policy, provider, added, "https://b.example")
        bad_edit = rename('["https://c.example", "https://bad.example/path"]')
        # The last good list:
        assert await first_request_after_the_reload(policy, provider, bad_edit, "https://b.example")
        assert "(line 1)" in caplog.text
        assert not (await policy.aevaluate("https://c.example")).allowed  # never from a bad document
        fixed = rename('["https://c.example"]')
        assert await first_request_after_the_reload(policy, provider, fixed, "https://c.example")
        assert not (await policy.aevaluate("https://b.example")).allowed

    await _run_policy_with_watcher(path, body)


@pytest.mark.anyio
async def test_a_file_created_after_start_is_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "cors.toml"

    async def body(policy: Policy, provider: CountingFileProvider) -> None:
        assert not (await policy.aevaluate("https://a.example")).allowed  # no file yet: refuse
        created = lambda: path.write_text('origins = ["https://a.example"]\n')  # noqa: E731
        assert await first_request_after_the_reload(policy, provider, created, "https://a.example")

    await _run_policy_with_watcher(path, body)


@pytest.mark.anyio
async def test_watchfiles_is_used_when_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cors.json"
    path.write_text('["https://a.example"]')
    events: list[set[tuple[int, str]]] = []
    watched: list[tuple[Any, ...]] = []

    async def awatch(*paths: Any, **options: Any) -> AsyncIterator[set[tuple[int, str]]]:
        watched.append((paths, options))
        for changes in events:
            yield changes

    monkeypatch.setitem(sys.modules, "watchfiles", types.SimpleNamespace(awatch=awatch))
    provider = FileProvider(path, poll_interval=0.05)
    await provider.load()
    calls: list[int] = []
    events.append({(2, str(tmp_path / "other.json"))})  # another file: ignored
    events.append({(2, str(path))})  # ours, but unchanged: ignored
    await provider.watch(lambda: calls.append(1))
    assert calls == []
    assert watched == [((path.parent,), {"step": 50, "debounce": 50})]
    write_atomically(path, '["https://b.example"]')
    await provider.watch(lambda: calls.append(1))
    assert calls == [1]
    # Turned off: polling even with watchfiles installed.
    polling = FileProvider(path, poll_interval=0.01, use_watchfiles=False)
    with anyio.move_on_after(0.05):
        await polling.watch(lambda: calls.append(2))
    assert calls == [1]


def test_a_change_in_place_is_accepted_once_it_holds_still_a_rename_at_once(tmp_path: Path) -> None:
    path = tmp_path / "cors.toml"
    path.write_text('origins = ["https://a.example"]\n')
    provider = FileProvider(path)
    accepted = provider.changed(None)[1]
    assert provider.settled(accepted) == (False, accepted, provider.settled(accepted)[2])
    with path.open("a") as handle:  # in place: the first look only notes it
        handle.write('patterns = ["https://*.a.example"]\n')
    reload, same, pending = provider.settled(accepted)
    assert (reload, same) == (False, accepted) and pending == provider.changed(None)[1]
    with path.open("a") as handle:  # still being written: noted again, not accepted
        handle.write("# more\n")
    reload, same, pending = provider.settled(accepted, pending)
    assert (reload, same) == (False, accepted)
    reload, accepted, pending = provider.settled(accepted, pending)  # unchanged one look later
    assert reload and accepted == provider.changed(None)[1]
    write_atomically(path, 'origins = ["https://b.example"]\n')  # a new inode: complete, at once
    reload, accepted, pending = provider.settled(accepted, pending)
    assert reload and accepted == provider.changed(None)[1]
    path.unlink()  # gone: a failed reload after one more look (the last good list stays)
    reload, accepted, pending = provider.settled(accepted, pending)
    assert not reload and pending is None
    assert provider.settled(accepted, pending)[:2] == (True, None)


POLL = 0.2  # the watcher's poll_interval in the tests below: four times the 51 ms pause between chunks


async def _watched(path: Path, body: Callable[[Policy, CountingFileProvider], Any]) -> None:
    """A policy on ``path`` with its watcher running, on the real clock (real files)."""
    provider = CountingFileProvider(path, poll_interval=POLL, use_watchfiles=False)
    policy = Policy(allow_origins=provider)
    async with anyio.create_task_group() as task_group:
        policy._resolver.attach(task_group)
        try:
            assert (await policy.aevaluate("https://app.example")).allowed  # loaded, watching
            await body(policy, provider)
        finally:
            task_group.cancel_scope.cancel()
    await policy.aclose()


@pytest.mark.anyio
async def test_a_file_written_in_chunks_is_never_published_half_written(tmp_path: Path) -> None:
    """A TOML file cut at a line boundary is valid TOML: without the wait for a stable file,
    a poll landing between the chunks published the list without its patterns line."""
    path = tmp_path / "cors.toml"
    pattern = "https://*.partner.example"
    path.write_text(f'origins = ["https://app.example"]\npatterns = ["{pattern}"]\n')
    changes: list[Change] = []

    async def body(policy: Policy, provider: CountingFileProvider) -> None:
        policy.on_change(changes.append)
        last = anyio.Event()
        policy.on_change(lambda change: last.set() if "https://new-7.example" in change.added else None)
        for round_ in range(8):
            with path.open("w") as handle:  # in place, in two chunks, 51 ms apart
                handle.write(f'origins = ["https://app.example", "https://new-{round_}.example"]\n')
                handle.flush()
                await anyio.sleep(0.051)
                handle.write(f'patterns = ["{pattern}"]\n')
            await anyio.sleep(0.03)
        # The last write is published once the file has held still for a look (the reload
        # that publishes it is awaited, not a bound slept).
        with anyio.fail_after(STUCK):
            await last.wait()
        assert (await policy.aevaluate("https://new-7.example")).allowed  # the first request

    await _watched(path, body)
    assert changes, "the watcher published no change at all"
    assert not any(pattern in change.removed for change in changes), changes


@pytest.mark.anyio
async def test_a_file_renamed_into_place_or_written_in_place_is_reloaded_once(tmp_path: Path) -> None:
    """How many looks each takes is test_a_change_in_place_is_accepted_once_it_holds_still_a_
    rename_at_once's; here, each change makes one reload and the first request after it sees
    the change."""
    path = tmp_path / "cors.json"
    path.write_text('["https://app.example"]')

    async def body(policy: Policy, provider: CountingFileProvider) -> None:
        for round_ in range(2):
            renamed = f'["https://app.example", "https://r{round_}.example"]'
            rename = lambda: write_atomically(path, renamed)  # noqa: B023, E731
            assert await first_request_after_the_reload(
                policy, provider, rename, f"https://r{round_}.example"
            )
            in_place = f'["https://app.example", "https://w{round_}.example"]'
            write = lambda: path.write_text(in_place)  # noqa: B023, E731
            assert await first_request_after_the_reload(policy, provider, write, f"https://w{round_}.example")
        assert provider.loads == 1 + 4  # the first load, then one per change

    await _watched(path, body)


@pytest.mark.anyio
async def test_with_watchfiles_a_change_in_place_waits_until_the_file_holds_still(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cors.json"
    path.write_text('["https://a.example"]')

    async def awatch(*paths: Any, **options: Any) -> AsyncIterator[set[tuple[int, str]]]:
        path.write_text('["https://a.example", "https://b.example"]')  # in place: same inode
        yield {(2, str(path))}

    monkeypatch.setitem(sys.modules, "watchfiles", types.SimpleNamespace(awatch=awatch))
    provider = FileProvider(path, poll_interval=0.02)
    await provider.load()
    calls: list[float] = []
    started = anyio.current_time()
    await provider.watch(lambda: calls.append(anyio.current_time() - started))
    assert len(calls) == 1 and calls[0] >= 0.02  # one more look, poll_interval later
