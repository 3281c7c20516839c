"""CLI start-up: wall time of `runner --help`, `runner report list` and `runner job list` (fresh process
each run), against the interpreter's own start-up (`python -c pass`, the floor). Aim (issue 17): at most
4x the floor, measured in the same run.

None of these commands touches a database: `runner report list` reads sql/reports/, `runner job list`
the jobs' catalogue. A command that does not exist (yet) is left out and the output says so.

A second floor, for what the framework costs: the `--help` of a bare two-command click app (importing
click and formatting a page is most of `runner --help`; each line notes its ratio to this one too).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

GROUP = "cli"
AIM_RATIO = 4.0  # at most 4x `python -c pass`
BARE_CLICK = (
    "import click\n@click.group()\ndef g():\n    'A group.'\n@g.command()\ndef a():\n    'A command.'\ng()"
)


def main(argv: list[str] | None = None) -> int:
    args = common.arguments(__doc__.splitlines()[0], argv=argv)
    runs = 7 if args.quick else 25
    runner_bin = shutil.which("runner") or str(Path(sys.executable).parent / "runner")
    commands = {
        "python -c pass (floor)": [sys.executable, "-c", "pass"],
        "bare click app --help (framework floor)": [sys.executable, "-c", BARE_CLICK, "--help"],
        "runner --help": [runner_bin, "--help"],
    }
    for extra in (["report", "list"], ["job", "list"]):
        if (
            subprocess.run([runner_bin, *extra], capture_output=True, cwd=common.REPO, check=False).returncode
            == 0
        ):
            commands[f"runner {' '.join(extra)}"] = [runner_bin, *extra]
        else:
            common.log(f"`runner {' '.join(extra)}` fails or does not exist here: left out")
    # As installed: pip writes the bytecode of what it installs, a checkout writes it on its first run; a
    # shell that says not to write it (PYTHONDONTWRITEBYTECODE) would have every run compile runner anew.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for argv_ in commands.values():  # warm the page cache, the bytecode and the render cache
        common.run_ms(argv_, cwd=common.REPO, env=env)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):  # interleaved, so a busy moment hits every command
        for name, argv_ in commands.items():
            samples[name].append(common.run_ms(argv_, cwd=common.REPO, env=env))
            cpu[name].append(common.last_cpu_ms)
    floor_name = next(iter(commands))

    def cpu_params(name: str) -> dict:
        median, low, high = common.stats(cpu[name])
        return {"cpu_ms_median": round(median, 1), "cpu_ms_min": round(low, 1), "cpu_ms_max": round(high, 1)}

    floor = common.result(floor_name, GROUP, samples[floor_name], params=cpu_params(floor_name))
    click_name = list(commands)[1]
    bare_click = common.result(
        click_name, GROUP, samples[click_name], baseline=floor, params=cpu_params(click_name)
    )
    results = [floor, bare_click]
    for name in list(commands)[2:]:
        r = common.result(
            name,
            GROUP,
            samples[name],
            baseline=floor,
            aim=f"<= {AIM_RATIO:g}x python -c pass",
            params=cpu_params(name),
        )
        r.aim_met = r.ratio is not None and r.ratio <= AIM_RATIO
        r.note = f"{r.median / bare_click.median:.2f}x the bare click app"
        results.append(r)
    common.print_table(results)
    if args.json:
        common.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
