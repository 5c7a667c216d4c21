"""conftest.fork_run: a `python ...` command run in a child of the fork server
gives what `subprocess.run` gives (exit status, stdout, stderr, files)."""

import subprocess
import sys
import threading

import pytest
from conftest import fork_run


def _both(command, **kwargs):
    """`(fork_run(...), subprocess.run(...))` of one command."""
    forked = fork_run(command, timeout=120, **kwargs)
    plain = subprocess.run(
        command, capture_output=True, text=True, timeout=120, **kwargs
    )
    return forked, plain


@pytest.mark.parametrize(
    "code, status, stdout, stderr",
    [
        (
            "print('out'); import sys; print('err', file=sys.stderr)",
            0,
            "out\n",
            "err\n",
        ),
        ("import sys; print('a'); sys.exit(3)", 3, "a\n", ""),
        ("import sys; sys.exit('a message')", 1, "", "a message\n"),
        ("raise SystemExit", 0, "", ""),
    ],
)
def test_exit_status_and_output_are_those_of_a_subprocess(code, status, stdout, stderr):
    forked, plain = _both([sys.executable, "-c", code])
    assert (forked.returncode, forked.stdout, forked.stderr) == (
        plain.returncode,
        plain.stdout,
        plain.stderr,
    )
    assert (forked.returncode, forked.stdout, forked.stderr) == (
        status,
        stdout,
        stderr,
    )


def test_an_uncaught_error_prints_its_traceback_and_exits_1():
    forked = fork_run([sys.executable, "-c", "x = 1\nraise KeyError('boom')"])
    assert forked.returncode == 1
    assert forked.stderr.startswith("Traceback (most recent call last):")
    assert forked.stderr.endswith("KeyError: 'boom'\n")


def test_script_module_argv_cwd_and_env(tmp_path):
    script = tmp_path / "show.py"
    script.write_text(
        "import os, sys\n"
        "print(__name__, sys.argv, os.getcwd(), os.environ.get('FORK_TEST'))\n"
    )
    env = {"FORK_TEST": "yes", "PATH": "/usr/bin:/bin"}
    forked, plain = _both([sys.executable, script, "a", "--b=1"], cwd=tmp_path, env=env)
    assert forked.returncode == 0, forked.stderr
    assert forked.stdout == plain.stdout
    assert forked.stdout == f"__main__ {[str(script), 'a', '--b=1']} {tmp_path} yes\n"
    forked = fork_run([sys.executable, "-c", "import sys; print(sys.argv)", "x"])
    assert forked.stdout == "['-c', 'x']\n"
    # `-m`: argv[0] is the module's file, as Python sets it.
    forked, plain = _both([sys.executable, "-m", "json.tool", "--help"])
    assert (forked.returncode, forked.stdout) == (0, plain.stdout)


def test_commands_asked_at_once_run_at_once(tmp_path):
    # The first waits for a file that only the second writes: served one after
    # the other, the first would wait until its timeout (status -14).
    flag = tmp_path / "flag"
    wait = (
        "import os, sys, time\n"
        f"while not os.path.exists({str(flag)!r}): time.sleep(0.01)\n"
        "print('seen')\n"
    )
    results = {}
    first = threading.Thread(
        target=lambda: results.update(
            first=fork_run([sys.executable, "-c", wait], timeout=60)
        )
    )
    first.start()
    second = fork_run([sys.executable, "-c", f"open({str(flag)!r}, 'w').close()"])
    first.join()
    assert second.returncode == 0
    assert (results["first"].returncode, results["first"].stdout) == (0, "seen\n")


def test_stderr_to_stdout_keeps_the_order_of_writes():
    code = (
        "import sys\n"
        "print('a', flush=True)\n"
        "print('b', file=sys.stderr, flush=True)\n"
        "print('c')\n"
    )
    command = [sys.executable, "-c", code]
    forked = fork_run(command, stderr=subprocess.STDOUT)
    plain = subprocess.run(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert (forked.stdout, forked.stderr) == (plain.stdout, plain.stderr)
    assert forked.stdout == "a\nb\nc\n"


def test_the_end_joins_threads_and_runs_atexit_functions():
    # As the interpreter ends: TensorFlow removes its autograph files in an
    # atexit function.
    code = (
        "import atexit, threading, time\n"
        "atexit.register(print, 'atexit')\n"
        "threading.Thread(target=lambda: (time.sleep(0.2), print('thread'))).start()\n"
        "print('main')\n"
    )
    forked, plain = _both([sys.executable, "-c", code])
    assert (forked.returncode, forked.stdout) == (plain.returncode, plain.stdout)
    assert forked.stdout == "main\nthread\natexit\n"
