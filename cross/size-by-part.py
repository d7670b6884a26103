#!/usr/bin/env python3
"""What each part of the relay costs in the release binary's code (.text), from `cargo bloat`.

    cross/size-by-part.py TARGET          e.g. x86_64-unknown-linux-musl (builds: minutes)
    cross/size-by-part.py --json FILE     a saved `cargo bloat ... --message-format json`

Runs `CARGO_PROFILE_RELEASE_STRIP=false cargo bloat --release --locked --target TARGET --bin
xray -n 0 --full-fn --message-format json` (the release profile, but with the symbols that
cargo bloat reads; the shipped binary is the same code, stripped) and sums every function's size
by part: the rule below whose pattern occurs earliest in the function's full name (the
standard library's only if no other matches). Printed as a Markdown table in KB (1,000 bytes).

Read it as an estimate: with LTO, code inlined into a caller counts for the caller (most of
src/otlp/receive.rs is inside the HTTP server's connection loop, for example), generic code
counts where its name points, and read-only data (certificates, tables, strings: .rodata) is
not in .text at all. armv7 needs cross/cargo-armv7, which cargo bloat cannot drive.
"""
import json
import re
import subprocess
import sys
from collections import Counter

# (part, pattern); patterns match demangled Rust paths or the C symbols of ring and musl.
RULES = [
    ("cfg.yaml decoder (config/, yaml-rust2)", r"xray_relay::config\b|yaml_rust2::|arraydeque::|hashlink::"),
    ("settings and command line (settings, cli, argh)", r"xray_relay::(settings|cli)\b|argh::|argh_shared::"),
    ("OTLP translator (otlp/translate, otlp/segments)", r"xray_relay::otlp::(translate|segments)\b"),
    ("OTLP receiver and forwarder (otlp/ but the translator; gzip)",
     r"xray_relay::otlp\b|xray_relay::proxy::otlp\b|miniz_oxide|adler2::|zlib_rs::"),
    ("HTTP server: proxy on 2000, /metrics, /healthz (proxy/, http/, httparse)",
     r"xray_relay::(proxy|http)\b|httparse::"),
    ("SigV4 signing (aws/signing, aws-sigv4, smithy types, hmac/sha2)",
     r"xray_relay::aws::signing\b|aws_sigv4::|aws_credential_types::|aws_smithy_\w+::|hmac::|sha2::|digest::|"
     r"block_buffer::|hex::|percent_encoding::|form_urlencoded::|\btime::|deranged::|tracing(_core)?::"),
    ("credentials (env, profile, SSO, IMDS, container, STS, process)",
     r"xray_relay::aws::(credentials|sts|imds|profile|env|timestamp)\b"),
    ("AWS client: endpoints, X-Ray calls, errors, HTTP proxy (aws/, go_url)",
     r"xray_relay::aws\b|xray_relay::go_(url|addr)\b"),
    ("HTTP client (ureq with SOCKS5, ureq-proto, http)", r"ureq::|ureq_proto::|\bhttp::|http_body|bytes::|base64"),
    ("TLS (rustls, webpki, ring)",
     r"rustls|webpki|\bring::|ring_core_|untrusted::|subtle::|zeroize::|getrandom::|"
     r"^_?(CRYPTO|GFp|OPENSSL|bn_|ecp_|p256_|p384_|x25519|aes_|gcm_|chacha|sha\d+_|nistz|fiat_|LIMBS|limbs_)"),
    ("JSON (serde_json, serde)", r"serde_json::|\bserde(_core)?::|ryu::|itoa::|zmij::"),
    ("logging (logging, env_logger, log)", r"xray_relay::logging\b|env_logger::|env_filter::|\blog::"),
    ("async runtime (smol and its parts)",
     r"async_\w+::|\bblocking::|polling::|rustix::|futures_\w+::|event_listener\w*::|concurrent_queue::|"
     r"\bsmol::|piper::|parking::|slab::|fastrand::|signal_hook\w*::|\blibc::"),
    ("UDP path, batches, upload, spool, telemetry (the rest of src/)", r"xray_relay::"),
    ("main (src/main.rs)", r"(^|[<\s])xray::"),
    ("Rust standard library, musl libc, unwinder", r"\bstd::|\bcore::|\balloc::|gimli::|addr2line::|"
     r"libunwind|rustc_demangle::|hashbrown::|memchr::"),
]


def part_of(function):
    """The part a function counts for: the rule matching earliest in its name."""
    name = function["name"]
    if re.search(r"\[[0-9a-f]{16}\]", name):
        # Crate hashes in the name: the prebuilt standard library and its own dependencies
        # (its gimli, miniz_oxide, hashbrown...), whatever they are called.
        return "Rust standard library, musl libc, unwinder"
    if "__rust_begin_short_backtrace" in name and function.get("crate") == "xray_relay":
        # A thread's body, inlined into std's thread entry: the relay's own code.
        return "UDP path, batches, upload, spool, telemetry (the rest of src/)"
    # The standard library's rule (the last) only when no other matches: its generic code
    # made for a part's types (core::ptr::drop_in_place<ureq::...>) counts for that part.
    for rules in (RULES[:-1], RULES[-1:]):
        best = None
        for part, pattern in rules:
            m = re.search(pattern, name)
            if m and (best is None or m.start() < best[0]):
                best = (m.start(), part)
        if best:
            return best[1]
    crate = (function.get("crate") or "").rstrip("?")
    if crate in ("std", ""):
        return "Rust standard library, musl libc, unwinder"
    return "other (" + crate + ")"


def main(argv):
    if len(argv) == 3 and argv[1] == "--json":
        with open(argv[2]) as f:
            data = json.load(f)
        label = argv[2]
    elif len(argv) == 2 and not argv[1].startswith("-"):
        cmd = ["cargo", "bloat", "--release", "--locked", "--target", argv[1], "--bin", "xray",
               "-n", "0", "--full-fn", "--message-format", "json"]
        env = dict(__import__("os").environ, CARGO_PROFILE_RELEASE_STRIP="false")
        data = json.loads(subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE).stdout)
        label = argv[1]
    else:
        sys.exit(__doc__)
    sizes = Counter()
    for function in data["functions"]:
        sizes[part_of(function)] += function["size"]
    print(f"| part ({label}) | KB of code |")
    print("| --- | ---: |")
    for part, size in sorted(sizes.items(), key=lambda kv: -kv[1]):
        print(f"| {part} | {size / 1000:.0f} |")
    print(f"| all functions (.text: {data['text-section-size'] / 1000:.0f} KB) | "
          f"{sum(sizes.values()) / 1000:.0f} |")


if __name__ == "__main__":
    main(sys.argv)
