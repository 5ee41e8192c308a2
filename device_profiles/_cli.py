"""``affectedge profiles list | show | detect | check``: the device-profile commands (hooked into the main CLI).

Text output is for people; with ``--json`` stdout carries exactly one JSON document and nothing else.
"""

import json
import sys

__all__ = ["add_parsers", "dispatch"]

_PARSER = {}


def add_parsers(sub):
    p = sub.add_parser("profiles", help="device profiles: list, show, detect this machine, check a model")
    psub = p.add_subparsers(dest="profiles_command", metavar="ACTION")
    ls = psub.add_parser("list", help="the shipped profiles")
    ls.add_argument("--json", action="store_true", help="print JSON")
    sh = psub.add_parser("show", help="one profile with every field and its source")
    sh.add_argument("name", help="a shipped profile name or a path to a profile .json file")
    sh.add_argument("--json", action="store_true", help="print JSON (the profile file format)")
    de = psub.add_parser("detect", help="which profile this machine (or a root file system) is, and why")
    de.add_argument("--root", default="/", help="read /proc, /sys and /etc under this folder (default: /)")
    de.add_argument("--json", action="store_true", help="print JSON")
    ck = psub.add_parser("check", help="check a model (ONNX or TFLite file, or zoo id) against a profile")
    ck.add_argument("model", help="an .onnx / .tflite file or a zoo model id")
    ck.add_argument("--profile", required=True, help="a shipped profile name, a profile .json file, or 'auto'")
    ck.add_argument("--threads", type=int, default=None, help="threads for the measured host latency "
                                                             "(default: the profile's)")
    ck.add_argument("--json", action="store_true", help="print JSON")
    _PARSER["profiles"] = p


def dispatch(args):
    cmd = getattr(args, "profiles_command", None)
    if cmd == "list":
        return _list(args)
    if cmd == "show":
        return _show(args)
    if cmd == "detect":
        return _detect(args)
    if cmd == "check":
        from affectedge.device_profiles._check import check_cli

        return check_cli(args)
    _PARSER["profiles"].print_help(sys.stderr)
    return 2


def _print_json(obj):
    json.dump(obj, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def _list(args):
    from affectedge.device_profiles import list_profiles, load

    profiles = [load(n) for n in list_profiles()]
    if args.json:
        _print_json([{"name": p.name, "description": p.description, "arch": p.arch, "cores": p.cores,
                      "clock_ghz": p.clock_ghz, "memory_mb": p.memory_mb, "threads": p.threads,
                      "runtimes": [r.to_dict() for r in p.runtimes], "file": str(p.source_file)}
                     for p in profiles])
        return 0
    rows = [("NAME", "ARCH", "CPU", "MEMORY", "FIRST RUNTIME", "DESCRIPTION")]
    for p in profiles:
        rows.append((p.name, p.arch, f"{p.cores} x {p.clock_ghz:g} GHz", _mb(p.memory_mb), p.runtimes[0].label,
                     p.description))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5])
    print(f"\n{len(profiles)} profiles; 'affectedge profiles show NAME' for one with its sources")
    return 0


def _mb(mb):
    return f"{mb / 1024:g} GB" if mb >= 1024 else f"{mb} MB"


def _show(args):
    from affectedge.device_profiles import load

    p = load(args.name)
    if args.json:
        _print_json(p.to_dict())
        return 0
    src = p.sources
    cite = lambda key: f"   [{src[key]}]" if key in src else ""  # noqa: E731
    lines = [f"{p.name}: {p.description}", f"  file         {p.source_file}"
             + (f" (extends {p.extends})" if p.extends else ""), "",
             f"  arch         {p.arch}{cite('arch')}",
             f"  cpu          {p.cores} cores @ {p.clock_ghz:g} GHz{cite('cores')}",
             f"  simd         {', '.join(p.simd) or 'none'}{cite('simd')}",
             f"  memory       {_mb(p.memory_mb)}{cite('memory_mb')}",
             f"  accelerators {', '.join(p.accelerators) or 'none'}{cite('accelerators')}",
             f"  throughput   {p.sustained_gmacs:g} GMAC/s sustained (used for latency estimates)"
             f"{cite('sustained_gmacs')}",
             "", "  runtimes (in preference order; the next one is used when one is missing here):"]
    lines += [f"    {i}. {rc.label}" for i, rc in enumerate(p.runtimes, 1)]
    lines += ["", f"  threads      {p.threads}{cite('threads')}",
              "  precision    " + ", ".join(f"{m} {v}" for m, v in p.precision.items()) + cite("precision"),
              f"  budgets      model file <= {p.budgets.model_size_mb:g} MB, RAM <= {p.budgets.ram_mb:g} MB, "
              "latency " + ", ".join(f"{m} <= {v:g} ms" for m, v in p.budgets.latency_ms.items())
              + cite("budgets"),
              f"  capture      audio {p.capture.audio_rate_hz} Hz in {p.capture.audio_buffer_ms:g} ms buffers, "
              f"camera {p.capture.camera_width}x{p.capture.camera_height} @ {p.capture.camera_fps:g} fps, "
              f"EEG boards {', '.join(p.capture.eeg_boards) or 'none'}{cite('capture')}",
              f"  numba        {'available' if p.numba_available else 'not available (NumPy twins)'}"
              + (f", cache {p.numba_cache_dir}" if p.numba_cache_dir else "") + cite("numba_available")]
    if p.constraints:
        lines += ["", "  constraints:"]
        for i, c in enumerate(p.constraints):
            lines.append(f"    - {c}")
            if f"constraints[{i}]" in src:
                lines.append(f"      [{src[f'constraints[{i}]']}]")
    print("\n".join(lines))
    return 0


def _detect(args):
    from affectedge.device_profiles import detect

    d = detect(args.root)
    if args.json:
        _print_json(d.to_dict())
        return 0
    print(f"{d.profile.name}: {d.profile.description}")
    if d.reasons:
        print("  from:")
        for r in d.reasons:
            print(f"    - {r}")
    for n in d.notes:
        print(f"  note: {n}")
    return 0

