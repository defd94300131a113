"""gate.decoders against encoders that share no code with gate: Python's gzip, zlib and brotli modules,
and Debian's `gzip` and `brotli` command-line tools. Every coding and chains of them, bodies from 0 B to
20 MB, quality levels, multi-member gzip, input split from 1 B to 1 MiB; cut and corrupt streams must
raise IncompleteBody (never zlib.error or brotli.error, never a clean end); bombs come out in bounded
pieces and stop at the cap.
"""

from __future__ import annotations

import gzip
import random
import shutil
import subprocess
import tracemalloc
import zlib
from collections.abc import Callable

import brotli
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gate.decoders import IDENTITY_PIECE, PIECE, Identity, decoder_for
from gate.errors import IncompleteBody, PageTooLarge

KB, MB = 1024, 1024 * 1024


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"`{name}` is not installed (Debian package {name!r})")
    return path


def cli(*argv: str) -> Callable[[bytes], bytes]:
    def encode(data: bytes) -> bytes:
        return subprocess.run(
            [tool(argv[0]), *argv[1:]], input=data, capture_output=True, check=True, timeout=120
        ).stdout

    return encode


def raw_deflate(data: bytes, level: int = 6) -> bytes:
    c = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


ENCODERS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip-py-6": ("gzip", lambda d: gzip.compress(d, 6)),
    "gzip-py-1": ("gzip", lambda d: gzip.compress(d, 1)),
    "gzip-py-9": ("gzip", lambda d: gzip.compress(d, 9)),
    "x-gzip-py": ("x-gzip", gzip.compress),
    "gzip-cli-6": ("gzip", cli("gzip", "-c", "-6")),
    "gzip-cli-9": ("gzip", cli("gzip", "-c", "-9")),
    "deflate-zlib": ("deflate", zlib.compress),
    "deflate-zlib-9": ("deflate", lambda d: zlib.compress(d, 9)),
    "deflate-raw": ("deflate", raw_deflate),
    "br-py-11": ("br", brotli.compress),
    "br-py-5": ("br", lambda d: brotli.compress(d, quality=5)),
    "br-py-0": ("br", lambda d: brotli.compress(d, quality=0)),
    "br-py-text-lgwin24": ("br", lambda d: brotli.compress(d, mode=brotli.MODE_TEXT, lgwin=24)),
    "br-cli-11": ("br", cli("brotli", "-c", "-q", "11")),
    "br-cli-5": ("br", cli("brotli", "-c", "-q", "5")),
    "br-cli-0": ("br", cli("brotli", "-c", "-q", "0")),
}


def page_bytes(size: int, seed: int = 0) -> bytes:
    """HTML-like text with enough variety to compress like a real page (about 4:1 to 8:1)."""
    rnd = random.Random(seed)
    words = [bytes(rnd.choices(b"abcdefghijklmnopqrstuvwxyz", k=rnd.randint(2, 10))) for _ in range(3000)]
    words += [b"<div class=card>", b"</div>\n", b"<p>", b"</p>", "歯科衛生士".encode(), b"&amp;"]
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rnd.choices(words, k=64)) + b"\n"
    return bytes(out[:size])


def decode(coding: str, wire: bytes, split: int, max_bytes: int | None = None) -> bytes:
    decoder = decoder_for(coding, max_bytes)
    assert decoder is not None
    out = bytearray()
    for i in range(0, len(wire), split):
        for piece in decoder.pieces(wire[i : i + split]):
            # a piece's size never depends on the input's (an uncompressed chunk's: at most one read's)
            assert len(piece) <= (IDENTITY_PIECE if isinstance(decoder, Identity) else 2 * PIECE)
            out += piece
    for piece in decoder.end_pieces():
        out += piece
    return bytes(out)


# -- defect 1: brotli pages lost their tail ------------------------------------------------------
@pytest.mark.parametrize("size", [100 * KB, 1 * MB, 5 * MB], ids=["100KB", "1MB", "5MB"])
@pytest.mark.parametrize("split", [16 * KB, 64 * KB, 1 * MB], ids=["16KiB", "64KiB", "1MiB"])
def test_brotli_page_arrives_whole(size: int, split: int) -> None:
    body = page_bytes(size)
    assert decode("br", brotli.compress(body, quality=5), split) == body


# -- differential: every encoder, sizes, splits --------------------------------------------------
SIZES = [0, 1, 100, 10 * KB, 100 * KB]
SPLITS = [1, 7, 4 * KB, 64 * KB, 1 * MB]


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("size", SIZES)
def test_decodes_what_real_encoders_wrote(encoder: str, size: int) -> None:
    coding, encode = ENCODERS[encoder]
    body = page_bytes(size, seed=size)
    wire = encode(body)
    for split in SPLITS:
        if split == 1 and len(wire) > 20 * KB:
            continue  # 1-byte pieces on the small bodies; the large ones below
        assert decode(coding, wire, split) == body, f"split {split}"


@pytest.mark.parametrize("encoder", ["gzip-cli-6", "deflate-raw", "br-cli-5", "br-py-11"])
def test_one_byte_pieces_of_a_large_body(encoder: str) -> None:
    coding, encode = ENCODERS[encoder]
    body = page_bytes(300 * KB, seed=3)
    assert decode(coding, encode(body), 1) == body


@pytest.mark.parametrize("encoder", ["gzip-cli-6", "br-cli-5", "deflate-zlib"])
def test_twenty_megabytes(encoder: str) -> None:
    coding, encode = ENCODERS[encoder]
    body = page_bytes(20 * MB, seed=20)
    wire = encode(body)
    assert decode(coding, wire, 64 * KB) == body
    assert decode(coding, wire, 1 * MB) == body


def test_incompressible_body_in_every_coding() -> None:
    body = random.Random(7).randbytes(2 * MB)  # compressed larger than it is: stored blocks
    for encoder in ("gzip-cli-6", "deflate-zlib", "deflate-raw", "br-cli-5"):
        coding, encode = ENCODERS[encoder]
        assert decode(coding, encode(body), 64 * KB) == body, encoder


def test_multi_member_gzip_as_gzip_cli_concatenates() -> None:
    parts = [page_bytes(n, seed=n) for n in (0, 5 * KB, 200 * KB, 1)]
    wire = b"".join(cli("gzip", "-c")(p) for p in parts)
    for split in (1, 13, 64 * KB):
        assert decode("gzip", wire, split) == b"".join(parts)
    assert gzip.decompress(wire) == b"".join(parts)  # the oracle agrees


def test_nul_padding_between_and_after_gzip_members_is_skipped() -> None:
    a, b = page_bytes(3000, 1), page_bytes(4000, 2)
    wire = gzip.compress(a) + b"\0" * 10 + gzip.compress(b) + b"\0" * 7
    assert decode("gzip", wire, 5) == gzip.decompress(wire) == a + b


CHAINS = {
    "gzip, br": lambda d: brotli.compress(gzip.compress(d)),
    "br, gzip": lambda d: gzip.compress(brotli.compress(d)),
    "deflate, gzip": lambda d: gzip.compress(zlib.compress(d)),
    "gzip, gzip": lambda d: gzip.compress(gzip.compress(d)),
    "gzip, identity, br": lambda d: brotli.compress(gzip.compress(d)),
    "Identity": lambda d: d,
    "": lambda d: d,
    "GZIP , BR": lambda d: brotli.compress(gzip.compress(d)),
}


@pytest.mark.parametrize("header", CHAINS)
@pytest.mark.parametrize("size", [0, 1000, 300 * KB])
def test_chains_undo_the_codings_last_first(header: str, size: int) -> None:
    body = page_bytes(size, seed=11)
    wire = CHAINS[header](body)
    for split in (1 if size <= 1000 else 997, 64 * KB):
        assert decode(header, wire, split) == body


def test_an_uncompressed_chunk_goes_to_the_page_whole_up_to_one_read_of_the_origin() -> None:
    # Cut smaller, each piece would cost the rewriter a round of its own and bound no memory: the
    # chunk is held already. Larger than one read (64 KiB), it is cut like any page's work.
    decoder = decoder_for("identity")
    assert decoder is not None
    chunk = page_bytes(64 * KB, seed=3)
    assert list(decoder.pieces(chunk)) == [chunk]
    big = page_bytes(200 * KB, seed=4)
    assert [len(p) for p in decoder.pieces(big)] == [64 * KB, 64 * KB, 64 * KB, 8 * KB]


def test_cli_chain_gzip_then_brotli() -> None:
    body = page_bytes(500 * KB, seed=5)
    wire = cli("brotli", "-c", "-q", "6")(cli("gzip", "-c")(body))
    assert decode("gzip, br", wire, 4 * KB) == body


def test_unknown_coding_is_refused() -> None:
    assert decoder_for("zstd") is None and decoder_for("gzip, compress") is None


# -- cut short and corrupt: IncompleteBody, never a clean end -----------------------------------
SINGLE = ["gzip-py-6", "gzip-cli-9", "deflate-zlib", "deflate-raw", "br-py-11", "br-cli-5"]


@pytest.mark.parametrize("encoder", SINGLE)
def test_every_cut_of_a_small_stream_is_reported(encoder: str) -> None:
    coding, encode = ENCODERS[encoder]
    wire = encode(page_bytes(2000, seed=9))
    for cut in range(1, len(wire)):
        with pytest.raises(IncompleteBody) as e:
            decode(coding, wire[:cut], 64)
        assert e.value.reason == "truncated", cut


@pytest.mark.parametrize("encoder", SINGLE)
def test_a_cut_large_stream_is_reported_after_most_of_the_page(encoder: str) -> None:
    coding, encode = ENCODERS[encoder]
    body = page_bytes(1 * MB, seed=4)
    wire = encode(body)
    decoder = decoder_for(coding)
    assert decoder is not None
    cut, out = wire[:-100], bytearray()
    for i in range(0, len(cut), 4096):
        out += decoder.feed(cut[i : i + 4096])
    assert body.startswith(out) and len(out) > len(body) // 2
    with pytest.raises(IncompleteBody, match="truncated"):
        decoder.close()


@pytest.mark.parametrize("encoder", ["gzip-cli-6", "deflate-zlib"])
def test_a_flipped_byte_in_a_checksummed_stream_never_passes_as_the_page(encoder: str) -> None:
    coding, encode = ENCODERS[encoder]
    body = page_bytes(50 * KB, seed=8)
    wire = encode(body)
    rnd = random.Random(1)
    for _ in range(300):
        i = rnd.randrange(10 if coding == "gzip" else 2, len(wire))  # past gzip's unchecked header fields
        bad = bytearray(wire)
        bad[i] ^= 1 << rnd.randrange(8)
        try:
            out = decode(coding, bytes(bad), 4096)
        except IncompleteBody as e:
            assert e.reason in ("corrupt", "truncated")
        else:
            assert out == body, i  # only a flip the format ignores may pass (e.g. unused header bits)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "gzip, br"])
@pytest.mark.parametrize(
    "garbage",
    [b"<!doctype html><p>not compressed at all</p>", b"\x1f\x8b\x08garbage" * 50, bytes(range(256)) * 4],
    ids=["html", "gzip-magic", "bytes"],
)
def test_a_body_that_is_not_its_coding_is_corrupt(coding: str, garbage: bytes) -> None:
    with pytest.raises(IncompleteBody):
        decode(coding, garbage, 16)


@pytest.mark.parametrize(
    "coding,encode",
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("deflate", raw_deflate), ("br", brotli.compress)],
)
def test_bytes_after_the_end_of_the_stream_are_corrupt(coding: str, encode: Callable[[bytes], bytes]) -> None:
    with pytest.raises(IncompleteBody, match="corrupt"):
        decode(coding, encode(b"<p>page</p>") + b"trailing", 3)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["gzip", "deflate", "br", "gzip, br"]), st.binary(max_size=3000), st.integers(1, 700))
def test_any_bytes_decode_or_raise_incomplete_body(coding: str, data: bytes, split: int) -> None:
    try:
        decode(coding, data, split)
    except IncompleteBody:
        pass  # never zlib.error, brotli.error or anything else


# -- property tests: sizes and splits ------------------------------------------------------------
ENCODE = {
    "gzip": lambda d, q: gzip.compress(d, q % 10),
    "deflate": lambda d, q: zlib.compress(d, q % 10),
    "raw-deflate": lambda d, q: raw_deflate(d, q % 10),
    "br": lambda d, q: brotli.compress(d, quality=q),
}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(ENCODE)),
    st.integers(0, 200 * KB),
    st.integers(0, 11),
    st.integers(0, 2**32),
    st.lists(st.integers(1, 70 * KB), min_size=1, max_size=6),
)
def test_property_round_trip_at_any_split(kind: str, size: int, quality: int, seed: int, splits: list[int]) -> None:
    rnd = random.Random(seed)
    body = page_bytes(size, seed) if seed % 2 else rnd.randbytes(size)
    wire = ENCODE[kind](body, quality)
    coding = "deflate" if kind == "raw-deflate" else kind
    decoder = decoder_for(coding)
    assert decoder is not None
    out, i, k = bytearray(), 0, 0
    while i < len(wire):
        n = splits[k % len(splits)]
        out += decoder.feed(wire[i : i + n])
        i, k = i + n, k + 1
    out += decoder.close()
    assert out == body


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(ENCODE)), st.integers(1, 50 * KB), st.integers(0, 2**32), st.data())
def test_property_any_cut_is_reported(kind: str, size: int, seed: int, data: st.DataObject) -> None:
    wire = ENCODE[kind](page_bytes(size, seed), 5)
    cut = data.draw(st.integers(1, len(wire) - 1))
    with pytest.raises(IncompleteBody):
        decode("deflate" if kind == "raw-deflate" else kind, wire[:cut], data.draw(st.integers(1, 5000)))


# -- bombs ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    zeros = bytes(16 * MB)
    c = brotli.Compressor(quality=5)
    br = b"".join(c.process(zeros) for _ in range(16)) + c.finish()  # 256 MB
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    gz = b"".join(z.compress(zeros) for _ in range(4)) + z.flush()  # 64 MB
    return {"br": br, "gzip": gz, "gzip, br": brotli.compress(gz)}


@pytest.mark.parametrize("coding", ["br", "gzip", "gzip, br"])
def test_a_bomb_comes_out_in_bounded_pieces_as_they_are_read(coding: str, bombs: dict[str, bytes]) -> None:
    decoder = decoder_for(coding)
    assert decoder is not None
    tracemalloc.start()
    try:
        taken = 0
        for piece in decoder.pieces(bombs[coding]):
            assert len(piece) <= 2 * PIECE
            taken += len(piece)
            if taken > 4 * MB:
                break
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert taken > 4 * MB and peak < 2 * MB, peak


@pytest.mark.parametrize("coding", ["br", "gzip", "gzip, br"])
def test_the_page_cap_stops_a_bomb(coding: str, bombs: dict[str, bytes]) -> None:
    with pytest.raises(PageTooLarge) as e:
        decode(coding, bombs[coding], 4 * KB, max_bytes=3 * MB)
    assert e.value.reason == "too_large" and "3,145,728" in str(e.value)


def test_the_page_cap_lets_a_page_of_exactly_its_size_through() -> None:
    body = page_bytes(100 * KB)
    assert decode("br", brotli.compress(body), 999, max_bytes=len(body)) == body
    assert decode("identity", body, 999, max_bytes=len(body)) == body
    with pytest.raises(PageTooLarge):
        decode("identity", body, 999, max_bytes=len(body) - 1)
