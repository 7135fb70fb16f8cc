"""Run CPython's regression test driver (python3 -m test) in a
non-main thread, for run.sh --in-thread.

greenld leaves the main thread native, and most of CPython's tests do
their blocking I/O in the main thread, so a plain run exercises the shim
only where a test starts threads. Run from a thread, every test case is a
fiber and every call it makes goes through the cooperative wrappers. Some
cases need the main thread (signal.signal() raises ValueError elsewhere):
they fail the same way natively, so the comparison stays fair.

    python3 in_thread.py [regrtest options] [test modules]
"""
import sys
import threading

from test.libregrtest.main import main

status = [0]


def run():
    try:
        main()
    except SystemExit as e:
        status[0] = e.code
    except BaseException:
        import traceback
        traceback.print_exc()
        status[0] = 1


t = threading.Thread(target=run, name='regrtest')
t.start()
t.join()
sys.exit(status[0])
